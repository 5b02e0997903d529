// The service's settings as tests take them: the mappers of src/server/settings.ts applied to the
// schema's parse of a server.yaml (empty unless a test gives one), so a test's defaults are the
// schema's and a test never writes one of its own.

import { parseServerConfig } from '../../src/config/load.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { serviceSettingsFrom, type ServiceSettings } from '../../src/server/settings.js';

/** server.yaml parsed by the schema; `yaml` sets what a test needs to differ from the defaults. */
export function serverConfig(yaml = ''): ServerConfig {
  return parseServerConfig(yaml, 'server.yaml');
}

/**
 * Every setting the service would run with given `yaml` as its server.yaml, e.g.
 * `defaultSettings('lookup:\n  maxDialogs: 2\n').lookup`. Overrides go through the schema, so a value
 * it would refuse fails the test that asks for it.
 */
export function defaultSettings(yaml = ''): ServiceSettings {
  return serviceSettingsFrom(serverConfig(yaml));
}
