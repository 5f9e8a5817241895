/**
 * The KPI dashboard (`<name>-kpis`): per deployed area a header and one graph per
 * widget definition of `dashboardWidgets(config, areas)` (functions/areas.ts) — the
 * metrics the area's alarms watch, with their thresholds drawn, then the AWS metrics
 * of its target the area declares. The same definitions are what `perfpilot
 * monitoring` checks, so the dashboard and its check cannot drift apart.
 */
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import type { PerfpilotConfig } from '#lib/config';
import { dashboardWidgets, type RegisteredArea } from '#functions/areas';
import { dashboardName, type DashboardWidgetDefinition } from '#shared/dashboard';
import { sourceMetric } from './perfpilot-alarms.ts';

export interface PerfpilotDashboardProps {
  readonly config: PerfpilotConfig;
  /** The deployed areas; only their widgets are drawn. */
  readonly areas: readonly RegisteredArea[];
}

/** Three graphs a row (a CloudWatch dashboard is 24 units wide). */
const GRAPH_WIDTH = 8;
const GRAPH_HEIGHT = 6;

export class PerfpilotDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;
  /** What is drawn, in order (the definitions `perfpilot monitoring` checks). */
  public readonly widgets: readonly DashboardWidgetDefinition[];

  constructor(scope: Construct, id: string, props: PerfpilotDashboardProps) {
    super(scope, id);
    this.widgets = dashboardWidgets(props.config, props.areas);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: dashboardName(props.config),
    });
    for (const area of props.areas) {
      const widgets = this.widgets.filter((w) => w.area === area);
      if (widgets.length === 0) continue;
      this.dashboard.addWidgets(new cloudwatch.TextWidget({ markdown: `## ${area}`, width: 24, height: 1 }));
      const graphs = widgets.map(
        (w) =>
          new cloudwatch.GraphWidget({
            title: w.title,
            width: GRAPH_WIDTH,
            height: GRAPH_HEIGHT,
            left: [sourceMetric(w.metric, w.periodSeconds, w.signal ?? w.metric.metricName)],
            leftAnnotations: w.thresholds.map((t) => ({ value: t.value, label: t.label })),
          }),
      );
      for (let i = 0; i < graphs.length; i += 24 / GRAPH_WIDTH) this.dashboard.addWidgets(...graphs.slice(i, i + 24 / GRAPH_WIDTH));
    }
  }
}
