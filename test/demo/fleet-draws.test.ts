/**
 * The fleet workload's draws are deterministic by seed (bench/fleet sends each loop the
 * same requests in every phase), and still look like the demo's traffic: Zipf-popular
 * vehicles inside the seeded fleet, points around Berlin, report windows within a week.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '#sdk/vector/random';
import { FleetDraws } from '#local/demo/fleet-workload';

function sequence(seed: number, n = 400): unknown[] {
  const d = new FleetDraws(5_000, 1.1, seededRandom(seed));
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) out.push([d.vehicle(), ...d.point(), d.speedKmh(), d.reportAgeMs()]);
  return out;
}

describe('FleetDraws', () => {
  it('draws the same sequence for the same seed, and another for another seed', () => {
    expect(sequence(1_303)).toEqual(sequence(1_303));
    expect(sequence(1_304)).not.toEqual(sequence(1_303));
  });

  it('draws vehicles of the fleet with Zipf popularity, points around Berlin and report windows within a week', () => {
    const d = new FleetDraws(5_000, 1.1, seededRandom(42));
    const counts = new Map<number, number>();
    for (let i = 0; i < 20_000; i++) {
      const v = d.vehicle();
      expect(Number.isInteger(v) && v >= 1 && v <= 5_000).toBe(true);
      counts.set(v, (counts.get(v) ?? 0) + 1);
      const [lon, lat] = d.point();
      expect(lon >= 13.1 && lon <= 13.7 && lat >= 52.35 && lat <= 52.65).toBe(true);
      const age = d.reportAgeMs();
      expect(age >= 0 && age <= 7 * 86_400_000).toBe(true);
    }
    // Rank 1 (vehicle 1) is the most popular; P(1) = 1 / H(5000, 1.1) ≈ 0.14.
    const ranked = [...counts].sort((a, b) => b[1] - a[1]);
    expect(ranked[0]![0]).toBe(1);
    expect(ranked[0]![1] / 20_000).toBeGreaterThan(0.1);
    expect(ranked[0]![1] / 20_000).toBeLessThan(0.2);
  });
});
