import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AREA_REGISTRY, REGISTERED_AREAS } from '#functions/areas';
import { parseConfig } from '#lib/config';
import { assertAccessDeclared } from '#shared/aws-access';
import { loadAnalyzer, loadPluginFactory } from '#local/plugins';

const config = parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://x@127.0.0.1/x' } } });

describe('the area registry', () => {
  it.each(REGISTERED_AREAS)('%s: one registration finds its plugin, analysis and handler by the folder convention', async (area) => {
    expect(AREA_REGISTRY[area].name).toBe(area);
    expect(typeof (await loadPluginFactory(area))).toBe('function');
    expect(typeof (await loadAnalyzer(area))).toBe('function');
    expect(existsSync(new URL(`../../functions/${area}/handler.ts`, import.meta.url))).toBe(true);
    const alarms = AREA_REGISTRY[area].alarms(config);
    expect(alarms.length).toBeGreaterThan(0);
    expect(alarms.every((a) => a.area === area)).toBe(true);
  });

  it('refuses an area that is not registered, naming those that are', async () => {
    await expect(loadPluginFactory('test')).rejects.toThrow(`area test has no implementation yet; available: ${REGISTERED_AREAS.join(', ')}`);
    await expect(loadAnalyzer('test')).rejects.toMatchObject({ name: 'InvalidRequestError' });
  });

  it('refuses an access declaration with a wildcard and no reason', () => {
    expect(() => assertAccessDeclared([{ actions: ['s3:GetObject'], resources: ['arn:{partition}:s3:::bucket/*'] }], 'probe')).toThrow(
      /probe: s3:GetObject on arn:\{partition\}:s3:::bucket\/\* has a wildcard but no wildcardReason/,
    );
    expect(() => assertAccessDeclared([{ actions: ['s3:GetObject'], resources: ['*'], wildcardReason: 'because' }], 'probe')).not.toThrow();
  });
});
