/**
 * The registered areas' plugins and analyses, loaded lazily (so `perfpilot status`
 * does not pay for a database driver) by the folder convention of functions/areas.ts:
 * `functions/<area>/plugin.ts` exports `createPlugin`, `functions/<area>/analyze.ts`
 * exports `analyze`.
 */
import { AREA_REGISTRY, isRegisteredArea, REGISTERED_AREAS, type RegisteredArea } from '#functions/areas';
import type { AreaAnalyzer, PluginFactory } from '#shared/area';
import type { Area } from '#shared/change';
import { InvalidRequestError } from '#shared/errors';
import type { TargetRecordFactory } from '#shared/target-record';

export { AREA_REGISTRY, REGISTERED_AREAS, isRegisteredArea, type RegisteredArea };

function notImplemented(area: Area): InvalidRequestError {
  return new InvalidRequestError(`area ${area} has no implementation yet; available: ${REGISTERED_AREAS.join(', ')}`);
}

export async function loadPluginFactory(area: Area): Promise<PluginFactory> {
  if (!isRegisteredArea(area)) throw notImplemented(area);
  const module = (await import(`../functions/${area}/plugin.ts`)) as { createPlugin: PluginFactory };
  return module.createPlugin;
}

export async function loadAnalyzer(area: Area): Promise<AreaAnalyzer> {
  if (!isRegisteredArea(area)) throw notImplemented(area);
  const module = (await import(`../functions/${area}/analyze.ts`)) as { analyze: AreaAnalyzer };
  return module.analyze;
}

/**
 * An area's record of Perfpilot's marks on its target (the second record, beside the
 * ledger): `functions/<area>/target-markers.ts` exports `targetRecord`, for an area
 * registered with `targetMarkers: true`; the others leave no mark on their targets.
 */
export async function loadTargetRecord(area: Area): Promise<TargetRecordFactory | undefined> {
  if (!isRegisteredArea(area) || !AREA_REGISTRY[area].targetMarkers) return undefined;
  const module = (await import(`../functions/${area}/target-markers.ts`)) as { targetRecord: TargetRecordFactory };
  return module.targetRecord;
}
