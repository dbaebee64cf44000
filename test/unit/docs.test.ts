// Keeps the documentation true: every agent option appears in the README's configuration table with its env var,
// and every doc the README links to exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AGENT_OPTIONS } from '../../agent/config.ts';
import { envName, flagName } from '../../shared/config/options.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');

test('README documents every agent option', () => {
  for (const o of AGENT_OPTIONS) {
    if (o.fileOnly) {
      assert.ok(readme.includes(`\`${o.key}\` (file only)`), `${o.key} missing from README`);
      continue;
    }
    assert.ok(readme.includes(`\`${flagName(o.key)}`), `${flagName(o.key)} missing from README`);
    assert.ok(readme.includes(`\`${envName(o.key)}\``), `${envName(o.key)} missing from README`);
  }
});

test('linked docs exist', () => {
  for (const m of readme.matchAll(/\]\(((?:docs|bench)\/[^)#]+)\)/g)) assert.ok(existsSync(`${root}${m[1]}`), `${m[1]} linked from README`);
  for (const doc of ['docs/ARCHITECTURE.md', 'docs/LIMITS.md']) assert.ok(existsSync(`${root}${doc}`), doc);
});
