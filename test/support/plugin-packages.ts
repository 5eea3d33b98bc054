// Plugins as third parties ship them: a package.json as docs/plugins.md describes it, `npm pack` in
// each plugin's folder, and a site that installs the tarballs by package name (offline, from npm's
// cache: the packages have no dependencies of their own — Paylink is an optional peer).
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** package.json of a plugin package: `paylink.plugin`, Paylink as an optional peer, nothing else. */
export function pluginManifest(name: string, extra: Record<string, unknown> = { type: 'module', exports: './index.ts' }) {
  return {
    name,
    version: '1.0.0',
    ...extra,
    paylink: { plugin: true },
    peerDependencies: { paylink: '>=0.1.0' },
    peerDependenciesMeta: { paylink: { optional: true } },
  };
}

/** Packs each folder (into `workDir`) and installs the tarballs into a new site at `site`. */
export async function packAndInstall(folders: string[], workDir: string, site: string, siteName = 'my-paylink-site'): Promise<void> {
  const tarballs: string[] = [];
  for (const dir of folders) {
    const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', workDir], { cwd: dir });
    tarballs.push(path.join(workDir, stdout.trim().split('\n').pop()!));
  }
  fs.mkdirSync(site);
  fs.writeFileSync(path.join(site, 'package.json'), JSON.stringify({ name: siteName, private: true }));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs], { cwd: site });
}
