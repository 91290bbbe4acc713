import { VERSION } from '../version.js';
import type { App, Definition, Script } from './deffile.js';
import type { Rootfs } from './rootfs.js';

export interface MetadataOptions {
  arch: string;
  buildDate: Date;
  /** The bootstrap image's name and digest, when it came from a registry. */
  base?: { name: string; digest: string | null };
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** `org.label-schema.build-date` as Apptainer writes it: `Monday_1_January_2024_0:0:0_UTC`. */
export function labelSchemaDate(d: Date): string {
  return `${DAYS[d.getUTCDay()]}_${d.getUTCDate()}_${MONTHS[d.getUTCMonth()]}_${d.getUTCFullYear()}_${d.getUTCHours()}:${d.getUTCMinutes()}:${d.getUTCSeconds()}_UTC`;
}

/** A script section as its file: its own `#!` line or `#!/bin/sh`, a blank line, the body. */
export function scriptFile(s: Script): string {
  let shebang = '#!/bin/sh';
  let body = s.script;
  if (body.startsWith('#!')) {
    const nl = body.indexOf('\n');
    shebang = (nl < 0 ? body : body.slice(0, nl)).trim();
    body = nl < 0 ? '' : body.slice(nl + 1).trim();
  }
  return `${shebang}\n\n${body}\n`;
}

const sorted = (labels: Record<string, string>) => Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** Labels of the image: base image's, then %post's `$SINGULARITY_LABELS`, build labels, %labels. */
async function buildLabels(root: Rootfs, def: Definition, opts: MetadataOptions, hasHelp: boolean): Promise<Record<string, string>> {
  let labels: Record<string, string> = {};
  try {
    const existing = JSON.parse((await root.read('.singularity.d/labels.json')) ?? '{}') as Record<string, unknown>;
    for (const [k, v] of Object.entries(existing)) if (typeof v === 'string') labels[k] = v;
  } catch {
    labels = {};
  }
  const fromPost = await root.read('.build.labels');
  if (fromPost !== null) {
    for (const line of fromPost.split('\n')) {
      const m = /^\s*(\S+)\s+(.*?)\s*$/.exec(line);
      if (m && !m[1]!.startsWith('#')) labels[m[1]!] = m[2]!;
    }
  }
  labels['org.label-schema.schema-version'] = '1.0';
  labels['org.label-schema.build-date'] = labelSchemaDate(opts.buildDate);
  labels['org.opencontainers.image.created'] = opts.buildDate.toISOString().replace(/\.\d{3}Z$/, 'Z');
  labels['org.label-schema.usage.singularity.version'] = `shelf-builder-${VERSION}`;
  if (hasHelp) {
    labels['org.label-schema.usage'] = '/.singularity.d/runscript.help';
    labels['org.label-schema.usage.singularity.runscript.help'] = '/.singularity.d/runscript.help';
  }
  for (const [k, v] of Object.entries(def.header)) labels[`org.label-schema.usage.singularity.deffile.${k}`] = v;
  if (opts.base) {
    labels['org.opencontainers.image.base.name'] = opts.base.name;
    if (opts.base.digest) labels['org.opencontainers.image.base.digest'] = opts.base.digest;
  }
  labels['org.label-schema.build-arch'] = opts.arch;
  labels['org.opencontainers.image.architecture'] = opts.arch;
  // The definition's own labels come last; one the base image already has is kept.
  const before = new Set(Object.keys(labels));
  for (const [k, v] of def.labels) if (!before.has(k)) labels[k] = v;
  return sorted(labels);
}

/** The SCIF files of one app under /scif/apps/NAME. */
async function writeApp(root: Rootfs, app: App): Promise<void> {
  const base = `scif/apps/${app.name}`;
  await root.mkdirs(`${base}/bin`);
  await root.mkdirs(`${base}/lib`);
  await root.mkdirs(`${base}/scif/env`);
  await root.mkdirs(`scif/data/${app.name}/input`);
  await root.mkdirs(`scif/data/${app.name}/output`);
  if (app.run) await root.write(`${base}/scif/runscript`, scriptFile(app.run), 0o755);
  if (app.start) await root.write(`${base}/scif/startscript`, scriptFile(app.start), 0o755);
  if (app.test) await root.write(`${base}/scif/test`, scriptFile(app.test), 0o755);
  if (app.help) await root.write(`${base}/scif/runscript.help`, `${app.help.script}\n`);
  if (app.env) await root.write(`${base}/scif/env/90-environment.sh`, `#!/bin/sh\n# Custom environment shell code should follow\n\n${app.env.script}\n`, 0o755);
  if (app.labels.length) await root.write(`${base}/scif/labels.json`, `${JSON.stringify(sorted(Object.fromEntries(app.labels)), null, '\t')}\n`);
}

export async function writeApps(root: Rootfs, def: Definition): Promise<void> {
  for (const app of def.apps) await writeApp(root, app);
}

/**
 * What `apptainer build` writes after %post: runscript.help, labels.json, the definition
 * (older ones kept in bootstrap_history), %environment, runscript/startscript/test; returns the
 * `inspect-metadata.json` object for the SIF.
 */
export async function insertMetadata(root: Rootfs, def: Definition, opts: MetadataOptions): Promise<string> {
  const help = def.scripts.help;
  if (help) await root.write('.singularity.d/runscript.help', `${help.script}\n`);
  const labels = await buildLabels(root, def, opts, !!help);
  await root.write('.singularity.d/labels.json', JSON.stringify(labels, null, '\t'));
  await root.remove('.build.labels');

  const previous = await root.read('.singularity.d/Singularity');
  if (previous !== null) {
    let n = 1;
    while (await root.exists(`.singularity.d/bootstrap_history/Singularity${n}`)) n++;
    await root.write(`.singularity.d/bootstrap_history/Singularity${n}`, previous);
  }
  await root.write('.singularity.d/Singularity', def.fullRaw);

  const env = def.scripts.environment;
  if (env?.script) {
    const current = (await root.read('.singularity.d/env/90-environment.sh')) ?? '#!/bin/sh\n';
    await root.write('.singularity.d/env/90-environment.sh', `${current}${current.endsWith('\n') ? '' : '\n'}${env.script}\n`, 0o755);
  }
  if (def.scripts.runscript) await root.write('.singularity.d/runscript', scriptFile(def.scripts.runscript), 0o755);
  if (def.scripts.startscript) await root.write('.singularity.d/startscript', scriptFile(def.scripts.startscript), 0o755);
  if (def.scripts.test) await root.write('.singularity.d/test', scriptFile(def.scripts.test), 0o755);

  const attributes: Record<string, unknown> = { labels };
  const environment: Record<string, string> = {};
  for (const f of ['90-environment.sh', '91-environment.sh']) {
    const text = f === '90-environment.sh' && !env?.script ? null : await root.read(`.singularity.d/env/${f}`);
    if (text) environment[`/.singularity.d/env/${f}`] = text;
  }
  if (Object.keys(environment).length) attributes.environment = environment;
  const runscript = await root.read('.singularity.d/runscript');
  if (runscript) attributes.runscript = runscript;
  if (def.scripts.test) attributes.test = await root.read('.singularity.d/test');
  if (help) attributes.helpfile = await root.read('.singularity.d/runscript.help');
  attributes.deffile = def.fullRaw;
  if (def.scripts.startscript) attributes.startscript = await root.read('.singularity.d/startscript');
  return JSON.stringify({ data: { attributes }, type: 'container' });
}
