/**
 * The benchmark's fleet feed, written independently of the delivery runtime and the
 * tuner: vehicles report positions at a steady rate, a dispatcher dashboard (one row
 * per vehicle, several KB in all) changes one row at a time. It keeps its own model of
 * what every subscriber should end up with, and what the naive path would have sent:
 * one post per event per connection, the event itself for positions and the whole
 * dashboard JSON for the dashboard.
 */
export const POSITIONS = 'fleet:positions';
export const DASHBOARD = 'fleet:dashboard';

export interface FeedOptions {
  readonly vehicles: number;
  readonly positionsPerSecond: number;
  readonly dashboardPerSecond: number;
}

type Publish = (topic: string, event: { type: string; key: string; data: unknown }) => void;

export class FleetFeed {
  /** What each topic's subscribers must end with (the topic state the runtime folds to). */
  readonly model = { [POSITIONS]: { position: {} as Record<string, unknown> }, [DASHBOARD]: { row: {} as Record<string, unknown> } };
  readonly counts = { positions: 0, dashboard: 0, naivePositionBytes: 0, naiveDashboardBytes: 0 };
  private timer: ReturnType<typeof setInterval> | undefined;
  private owed = { positions: 0, dashboard: 0 };
  private last = 0;
  private n = 0;

  constructor(
    private readonly publish: Publish,
    private options: FeedOptions,
  ) {
    for (let v = 0; v < options.vehicles; v++) this.model[DASHBOARD].row[`v${v}`] = this.row(v, 'idle');
  }

  /** The dashboard's starting rows, published once before the measurement. */
  seed(): void {
    for (const [key, data] of Object.entries(this.model[DASHBOARD].row)) this.publish(DASHBOARD, { type: 'row', key, data });
  }

  setRates(rates: Partial<FeedOptions>): void {
    this.options = { ...this.options, ...rates };
  }

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => this.tick(), 10);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private row(v: number, status: string) {
    return { plate: `FL-${String(v).padStart(4, '0')}`, driver: `Driver ${v}`, status, etaMinutes: (v * 7) % 60, loadKg: (v * 137) % 900, depot: `Depot ${v % 7}`, updatedAt: Date.now() };
  }

  private tick(): void {
    const now = performance.now();
    const dt = (now - this.last) / 1_000;
    this.last = now;
    this.owed.positions += dt * this.options.positionsPerSecond;
    this.owed.dashboard += dt * this.options.dashboardPerSecond;
    for (; this.owed.positions >= 1; this.owed.positions--) {
      const v = Math.floor(Math.random() * this.options.vehicles);
      const t = ++this.n;
      const data = { lat: 48.1 + Math.sin(t / 50) / 10, lon: 11.5 + Math.cos(t / 70) / 10, speedKmh: (t * 13) % 90, heading: (t * 7) % 360, at: Date.now() };
      this.model[POSITIONS].position[`v${v}`] = data;
      this.counts.positions++;
      this.counts.naivePositionBytes += JSON.stringify({ type: 'position', key: `v${v}`, data }).length;
      this.publish(POSITIONS, { type: 'position', key: `v${v}`, data });
    }
    for (; this.owed.dashboard >= 1; this.owed.dashboard--) {
      const v = Math.floor(Math.random() * this.options.vehicles);
      const data = this.row(v, ['idle', 'loading', 'en route', 'delivering', 'returning'][this.n++ % 5]!);
      this.model[DASHBOARD].row[`v${v}`] = data;
      this.counts.dashboard++;
      this.counts.naiveDashboardBytes += JSON.stringify(this.model[DASHBOARD]).length;
      this.publish(DASHBOARD, { type: 'row', key: `v${v}`, data });
    }
  }
}
