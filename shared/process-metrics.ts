/**
 * prom-client's default process and Node.js metrics under a component prefix, minus the three gauges whose names end
 * in `_total` (`nodejs_active_{handles,requests,resources}_total`): `promtool check metrics` rejects a `_total` suffix
 * on a non-counter, and each is the sum of the per-type gauge of the same name without the suffix.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

const NON_COUNTER_TOTALS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of NON_COUNTER_TOTALS) registry.removeSingleMetric(`${prefix}${name}`);
}
