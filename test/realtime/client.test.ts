/**
 * The client's patch/resync logic under dropped and reordered messages (property-based):
 * whatever is lost or shuffled, once the last update arrives the client ends with the
 * publisher's state, asking for a resync only when it must.
 */
import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it, vi } from 'vitest';
import { compressIfWorth, encodeUpdate, envelopeOf } from '#functions/realtime/packing';
import { RealtimeClient } from '#sdk/realtime/client';
import { coalesce, type RealtimeEvent, type TopicState } from '#sdk/realtime/coalesce';
import type { ClientMessage, FullUpdate, PatchUpdate } from '#sdk/realtime/protocol';

const TOPIC = 'fleet:positions';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the dispatcher would send for these batches: one update per batch that changed the state. */
function serverUpdates(batches: RealtimeEvent[][]): { messages: string[]; states: TopicState[] } {
  let state: TopicState = {};
  const states: TopicState[] = [state];
  const messages: string[] = [];
  for (const batch of batches) {
    const next = coalesce(state, batch, { count: 'sum', status: 'merge' });
    const patch = jsonpatch.compare(state, next);
    if (patch.length === 0) continue;
    const s = states.length;
    const p = encodeUpdate({ t: TOPIC, s, k: 'p', d: patch, p: 0, f: 0 } satisfies PatchUpdate);
    const f = encodeUpdate({ t: TOPIC, s, k: 'f', d: next, f: 0 } satisfies FullUpdate);
    messages.push(compressIfWorth(envelopeOf([f.bytes <= p.bytes ? f : p]), { compressionMinBytes: 200, compressionSavingPercentMin: 10 }).text);
    states.push(next);
    state = next;
  }
  return { messages, states };
}

const eventArb = fc.record({
  type: fc.constantFrom('position', 'status', 'count'),
  key: fc.constantFrom('v1', 'v2', 'v3', 'v4'),
  data: fc.oneof(fc.record({ lat: fc.integer({ min: -90, max: 90 }), speed: fc.nat(200) }), fc.constant(null)),
}).map((e): RealtimeEvent => (e.type === 'count' ? { type: 'count', key: e.key, data: e.data === null ? 1 : e.data.speed } : e));

describe('the realtime client', () => {
  it('converges to the publisher\'s state under dropped and reordered messages', async () => {
    let resynced = 0;
    let reordered = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(eventArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 25 }),
        fc.array(fc.record({ drop: fc.boolean(), lag: fc.integer({ min: 0, max: 3 }) }), { minLength: 25, maxLength: 25 }),
        fc.double({ min: 0, max: 0.6, noNaN: true }),
        async (batches, fates, dropRate) => {
          const { messages, states } = serverUpdates(batches);
          const finalSeq = states.length - 1;
          const outbox: ClientMessage[] = [];
          const client = new RealtimeClient({ send: (t) => outbox.push(JSON.parse(t) as ClientMessage), reorderWaitMs: 2, resyncRetryMs: 4 });
          client.subscribe([TOPIC]);
          const full = (s: number) => envelopeOf([encodeUpdate({ t: TOPIC, s, k: 'f', d: states[s], f: 0 })]);
          await client.receive(full(0));
          // Shuffle within a small distance and drop some; the last update always arrives, last.
          const schedule = messages
            .map((m, i) => ({ m, i, key: i + (fates[i % fates.length]!.lag), drop: i < messages.length - 1 && fates[i % fates.length]!.drop && (i * 0.37) % 1 < dropRate }))
            .filter((x) => !x.drop)
            .sort((a, b) => (a.i === messages.length - 1 ? 1 : b.i === messages.length - 1 ? -1 : a.key - b.key || a.i - b.i));
          for (const x of schedule) await client.receive(x.m);
          for (let round = 0; round < 40 && client.seq(TOPIC) !== finalSeq; round++) {
            await sleep(3);
            const asks = outbox.splice(0).filter((m) => m.action === 'resync');
            if (asks.length > 0) await client.receive(full(finalSeq));
          }
          client.close();
          if (client.stats.resyncRequests > 0) resynced++;
          if (client.stats.gaps > 0 && client.stats.resyncRequests === 0) reordered++;
          expect(client.seq(TOPIC)).toBe(finalSeq);
          expect(client.state(TOPIC)).toEqual(states[finalSeq]);
          if (schedule.length === messages.length && schedule.every((x, j) => x.i === j)) expect(client.stats.resyncRequests).toBe(0);
        },
      ),
      { numRuns: 80 },
    );
    // The runs did exercise both recoveries: reordering healed by waiting, losses by resync.
    expect(resynced).toBeGreaterThan(0);
    expect(reordered).toBeGreaterThan(0);
  });

  it('ignores duplicates, applies an early update once the missing one arrives, and acknowledges when asked', async () => {
    const sent: ClientMessage[] = [];
    const client = new RealtimeClient({ send: (t) => sent.push(JSON.parse(t) as ClientMessage), reorderWaitMs: 1_000 });
    client.subscribe(['t']);
    const msg = (u: object) => JSON.stringify({ v: 1, u: [u] });
    await client.receive(msg({ t: 't', s: 0, k: 'f', d: { a: {} }, f: 1 }));
    await client.receive(msg({ t: 't', s: 2, k: 'p', d: [{ op: 'add', path: '/a/y', value: 2 }], p: 5, f: 6 }));
    expect(client.seq('t')).toBe(0);
    await client.receive(msg({ t: 't', s: 1, k: 'p', d: [{ op: 'add', path: '/a/x', value: 1 }], p: 3, f: 4, a: 1 }));
    expect(client.seq('t')).toBe(2);
    expect(client.state('t')).toEqual({ a: { x: 1, y: 2 } });
    await client.receive(msg({ t: 't', s: 1, k: 'p', d: [{ op: 'add', path: '/a/x', value: 1 }], p: 3, f: 4 }));
    expect(client.stats.duplicates).toBe(1);
    expect(sent).toEqual([{ action: 'subscribe', topics: ['t'] }, { action: 'ack', t: 't', s: 1, p: 3, f: 4 }]);
    client.close();
  });

  it('asks for a resync when a patch does not apply to the state it holds', async () => {
    const sent: ClientMessage[] = [];
    const errors: Error[] = [];
    const client = new RealtimeClient({ send: (t) => sent.push(JSON.parse(t) as ClientMessage), onError: (e) => errors.push(e) });
    client.subscribe(['t']);
    await client.receive(JSON.stringify({ v: 1, u: [{ t: 't', s: 0, k: 'f', d: {}, f: 1 }] }));
    await client.receive(JSON.stringify({ v: 1, u: [{ t: 't', s: 1, k: 'p', d: [{ op: 'replace', path: '/missing/x', value: 1 }], p: 1, f: 1 }] }));
    expect(sent.at(-1)).toEqual({ action: 'resync', topic: 't' });
    expect(errors[0]?.message).toMatch(/patch 1 does not apply/);
    client.close();
  });

  it('asks again for a subscription that brought no full state (its answer was lost), backing off, and stops once the state arrives', async () => {
    vi.useFakeTimers();
    try {
      const sent: ClientMessage[] = [];
      const subscribes = () => sent.filter((m) => m.action === 'subscribe');
      const client = new RealtimeClient({ send: (t) => sent.push(JSON.parse(t) as ClientMessage), subscribeRetryMs: 20 });
      client.subscribe(['t', 'u']);
      await client.receive(JSON.stringify({ v: 1, u: [{ t: 'u', s: 4, k: 'f', d: { b: 1 }, f: 1 }] })); // 'u' answered, 't' not
      vi.advanceTimersByTime(19);
      expect(subscribes()).toEqual([{ action: 'subscribe', topics: ['t', 'u'] }]);
      vi.advanceTimersByTime(1); // 20 ms: asked again, for 't' only
      vi.advanceTimersByTime(40); // 40 ms later: again
      vi.advanceTimersByTime(79); // the next would be 80 ms later
      expect(subscribes().slice(1)).toEqual([
        { action: 'subscribe', topics: ['t'] },
        { action: 'subscribe', topics: ['t'] },
      ]);
      expect(client.stats.subscribeRetries).toBe(2);
      await client.receive(JSON.stringify({ v: 1, u: [{ t: 't', s: 7, k: 'f', d: { a: 1 }, f: 2 }] }));
      expect(client.state('t')).toEqual({ a: 1 });
      vi.advanceTimersByTime(60_000);
      expect(subscribes()).toHaveLength(3);
      client.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
