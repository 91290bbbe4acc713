import { copyFile, lstat, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { FileSource } from '../sif/source.js';
import { readSif } from '../sif/image.js';
import { primaryPartition, isEncrypted, readSmallText } from '../sif/objects.js';
import { ENCRYPTED_FS_TYPES } from '../sif/constants.js';
import { writeSif, type SifWriteResult } from '../sif/write.js';
import { parseDefinitionFile, type Definition, type Script } from './deffile.js';
import { makeBaseEnv } from './layout.js';
import { insertMetadata, writeApps } from './metadata.js';
import { Rootfs } from './rootfs.js';
import { runSandboxed, type SandboxLimits, type SandboxResult } from './sandbox.js';
import { dockerRunscript, dockerEnvScript, type OciImageConfig } from './oci-config.js';

/** The base a bootstrap agent fetched: a SIF to unpack, OCI layers to apply, or nothing. */
export type Bootstrap =
  | { kind: 'scratch' }
  | { kind: 'sif'; file: string; name: string; digest: string | null }
  | { kind: 'layers'; layers: string[]; config: OciImageConfig | null; name: string; digest: string | null };

export interface FetchContext {
  arch: string;
  /** Where the agent puts what it downloads (the build's work folder). */
  dir: string;
  log: (line: string) => void;
  signal: AbortSignal;
}

/** library, oras and docker agents (the registry side lives outside the builder). */
export type BaseFetcher = (def: Definition, ctx: FetchContext) => Promise<Bootstrap>;

export const AGENTS = ['library', 'oras', 'docker', 'localimage', 'scratch'] as const;

export class BuildFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildFailure';
  }
}

export interface BuildOptions {
  id: string;
  definition: string;
  arch: string;
  /** The build context (`%files` sources), a tar.gz. */
  context?: string | null;
  /** The client's working folder, for relative `%files` sources. */
  workingDir?: string | null;
  /** Folder under which this build gets its own work folder. */
  workRoot: string;
  /** First host id of this build's 65536-id range. */
  idBase: number;
  network?: boolean;
  timeoutSeconds: number;
  limits?: SandboxLimits;
  fetchBase: BaseFetcher;
  log: (text: string) => void;
  signal: AbortSignal;
  /** Largest download or context the builder accepts. */
  maxBytes?: number;
  now?: Date;
}

export interface BuildResult extends SifWriteResult {
  file: string;
  arch: string;
  /** The work folder, removed by `cleanup`. */
  cleanup: () => Promise<void>;
}

const info = (text: string) => `INFO:    ${text}\n`;

/** The agents a definition's stages use must all be known (checked at submit). */
export function checkDefinition(text: string): Definition[] {
  const stages = parseDefinitionFile(text);
  for (const s of stages) {
    const agent = s.header.bootstrap!.toLowerCase();
    if (!(AGENTS as readonly string[]).includes(agent)) throw new BuildFailure(`unsupported bootstrap agent "${s.header.bootstrap}" (this builder knows ${AGENTS.join(', ')})`);
    if (agent !== 'scratch' && !s.header.from) throw new BuildFailure(`Bootstrap: ${agent} needs a From: header`);
  }
  return stages;
}

/**
 * One remote build: every stage bootstrapped, %setup/%files/%post/%test run in the sandbox,
 * the image metadata written, the last stage squashed and wrapped into a SIF.
 */
export async function runBuild(opts: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const deadline = started + opts.timeoutSeconds * 1000;
  const work = path.join(opts.workRoot, opts.id);
  const rootId = opts.idBase;
  const cleanup = () => rm(work, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
  // The sandbox's ids must traverse the work root to reach their own (0700) folder.
  await mkdir(opts.workRoot, { recursive: true, mode: 0o711 });
  await checkTraversable(opts.workRoot);
  await mkdir(work, { mode: 0o700 });
  const workFs = new Rootfs(work, rootId);
  await workFs.own(work);
  const log = opts.log;
  try {
    const stages = checkDefinition(opts.definition);
    log(info(`Setting maximum build duration to ${formatDuration(opts.timeoutSeconds)}`));
    log(info(`Starting build${stages.length > 1 ? ` (${stages.length} stages)` : ''}...`));
    const remaining = () => {
      const left = deadline - Date.now();
      if (left <= 0) throw new BuildFailure(`build took longer than ${formatDuration(opts.timeoutSeconds)}`);
      return left;
    };
    const sandbox = async (what: string, o: Partial<Parameters<typeof runSandboxed>[0]> & { mode: 'image' | 'tools'; command: string[]; root: string }) => {
      const r = await runSandboxed({
        idBase: rootId,
        timeoutMs: remaining(),
        stateDir: work,
        onOutput: (b) => log(b.toString('utf8')),
        signal: opts.signal,
        limits: opts.limits,
        work,
        ...o,
      });
      checkResult(what, r, opts);
      return r;
    };
    const tools = async (what: string, script: string, ...args: string[]) => {
      const toolRoot = path.join(work, '.tools-root');
      await mkdir(toolRoot, { recursive: true });
      await workFs.own(toolRoot);
      await sandbox(what, { mode: 'tools', root: toolRoot, command: ['/bin/sh', '-ec', script, 'shelf-build', ...args] });
    };

    const contextDir = path.join(work, 'context');
    if (opts.context) {
      log(info('Unpacking the build context'));
      await copyFile(opts.context, path.join(work, 'context.tar.gz'));
      await workFs.own(path.join(work, 'context.tar.gz'));
      await tools('unpacking the build context', 'mkdir -p /work/context && tar -xzf /work/context.tar.gz -C /work/context --no-same-owner && rm -f /work/context.tar.gz');
    }
    const stageDirs = new Map<string, string>();
    let last: { root: Rootfs; metadata: string; ociConfig: string | null; def: Definition } | null = null;
    for (const [i, def] of stages.entries()) {
      const stageName = def.stage ?? `stage-${i + 1}`;
      const stageDir = path.join(work, `stage-${i + 1}`);
      await mkdir(stageDir, { mode: 0o700 });
      await workFs.own(stageDir);
      const rel = path.relative(work, stageDir);
      const root = new Rootfs(path.join(stageDir, 'rootfs'), rootId);
      const agent = def.header.bootstrap!.toLowerCase();
      log(info(`${stages.length > 1 ? `[${stageName}] ` : ''}Bootstrap: ${agent}${def.header.from ? ` From: ${def.header.from}` : ''}`));
      let base: Bootstrap;
      if (agent === 'scratch') base = { kind: 'scratch' };
      else if (agent === 'localimage') base = await localImage(def, contextDir, opts.workingDir ?? '/', rootId, stageDir);
      else base = await opts.fetchBase(def, { arch: opts.arch, dir: stageDir, log: (l) => log(info(l)), signal: opts.signal });
      let ociConfig: string | null = null;
      if (base.kind === 'scratch') {
        await mkdir(root.dir, { mode: 0o755 });
        await root.own(root.dir);
      } else if (base.kind === 'sif') {
        const { offset, ociConfig: cfg } = await sifPartition(base.file);
        ociConfig = cfg;
        const sifRel = path.relative(work, base.file);
        await workFs.own(base.file);
        log(info('Extracting the base image'));
        await tools('extracting the base image', 'unsquashfs -no-progress -no-xattrs -f -d "/work/$1/rootfs" -o "$2" -excludes "/work/$3" dev >/dev/null && rm -f "/work/$3"', rel, String(offset), sifRel);
      } else {
        log(info(`Applying ${base.layers.length} layer(s)`));
        for (const l of base.layers) await workFs.own(l);
        await tools('applying the image layers', APPLY_LAYERS, rel, ...base.layers.map((l) => path.relative(work, l)));
        if (base.config) ociConfig = JSON.stringify(base.config);
      }
      await makeBaseEnv(root, false);
      if (base.kind === 'layers') {
        const cfg = base.config?.config ?? {};
        await root.write('.singularity.d/env/10-docker2singularity.sh', dockerEnvScript(cfg), 0o755);
        await root.write('.singularity.d/runscript', dockerRunscript(cfg), 0o755);
        if (cfg.Labels && !(await root.exists('.singularity.d/labels.json'))) await root.write('.singularity.d/labels.json', JSON.stringify(cfg.Labels, null, '\t'));
      }
      await writeApps(root, def);

      for (const f of def.files.filter((x) => x.fromStage !== null)) {
        const from = stageDirs.get(f.fromStage!);
        if (!from) throw new BuildFailure(`%files from ${f.fromStage}: no such stage`);
        log(info(`Copying files from stage ${f.fromStage}`));
        for (const t of f.files) {
          await copyInto(tools, root, work, `/work/${path.relative(work, from)}/rootfs${absolute(t.src)}`, t.dst);
        }
      }
      if (def.scripts.setup?.script) {
        log(info('Running setup scriptlet'));
        await runScript(sandbox, root, def.scripts.setup, '.setup.script', { SINGULARITY_ROOTFS: '/', APPTAINER_ROOTFS: '/' });
      }
      const hostFiles = def.files.filter((x) => x.fromStage === null).flatMap((x) => x.files);
      const appFiles = def.apps.flatMap((a) => a.files.map((t) => ({ src: t.src, dst: t.dst.startsWith('/') ? t.dst : `/scif/apps/${a.name}/${t.dst}` })));
      if (hostFiles.length || appFiles.length) {
        if (!opts.context) throw new BuildFailure('%files needs a build context (upload one, e.g. with shelf build --remote --context DIR)');
        log(info('Copying files from the build context'));
        for (const t of [...hostFiles, ...appFiles]) {
          await copyInto(tools, root, work, contextSource(t.src, opts.workingDir ?? '/'), t.dst);
        }
      }
      const post = def.scripts.post;
      const installs = def.apps.filter((a) => a.install?.script);
      if (post?.script || installs.length) {
        log(info('Running post scriptlet'));
        const script: Script = { script: post?.script ?? '', args: post?.args ?? '' };
        for (const a of installs) script.script += `\ncd /scif/apps/${a.name}\n${a.install!.script}\ncd /`;
        await runScript(sandbox, root, script, '.post.script', {
          SINGULARITY_ENVIRONMENT: '/.singularity.d/env/91-environment.sh',
          APPTAINER_ENVIRONMENT: '/.singularity.d/env/91-environment.sh',
          SINGULARITY_LABELS: '/.build.labels',
          APPTAINER_LABELS: '/.build.labels',
        }, opts.network);
      }
      log(info('Adding labels, environment, runscript and definition'));
      const arch = (await archOfRootfs(root)) ?? opts.arch;
      const metadata = await insertMetadata(root, def, {
        arch,
        buildDate: opts.now ?? new Date(),
        base: base.kind === 'scratch' ? undefined : { name: base.name, digest: base.digest },
      });
      if (def.scripts.test?.script) {
        log(info('Running testscript'));
        await sandbox('%test', { mode: 'image', root: root.dir, readOnly: true, command: ['/bin/sh', '/.singularity.d/actions/test'], env: { HOME: '/root' } });
      }
      stageDirs.set(stageName, stageDir);
      last = { root, metadata, ociConfig, def };
    }

    const final = last!;
    const arch = (await archOfRootfs(final.root)) ?? opts.arch;
    if (arch !== opts.arch) log(`WARNING: the image's /bin/sh is built for ${arch}, not ${opts.arch}\n`);
    log(info('Creating SIF file...'));
    const lastRel = path.relative(work, path.dirname(final.root.dir));
    await tools('squashing the image', 'mksquashfs "/work/$1/rootfs" /work/image.squashfs -noappend -comp gzip -no-progress -quiet', lastRel);
    const out = path.join(work, 'image.sif');
    const json = [{ name: 'inspect-metadata.json', data: Buffer.from(final.metadata) }];
    if (final.ociConfig) json.push({ name: 'oci-config.json', data: Buffer.from(final.ociConfig) });
    const written = await writeSif(out, { deffile: opts.definition, json, squashfs: path.join(work, 'image.squashfs'), arch, createdAt: opts.now });
    await rm(path.join(work, 'image.squashfs'), { force: true });
    log(info(`Build complete: ${written.size} bytes, ${written.digest}`));
    return { ...written, file: out, arch, cleanup };
  } catch (err) {
    if (!(err instanceof BuildFailure)) {
      // Anything else is also the build's failure as far as the client can tell; say what.
      throw new BuildFailure((err as Error).message);
    }
    throw err;
  }
}

/** Every folder above the work root must let the build's ids pass (o+x), or its sandbox cannot reach it. */
async function checkTraversable(dir: string): Promise<void> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = await lstat(d);
    if ((st.mode & 0o001) === 0) throw new BuildFailure(`builder misconfigured: the build work folder ${dir} is not reachable by the builds' ids (${d} needs o+x)`);
    if (d === path.dirname(d)) return;
  }
}

function checkResult(what: string, r: SandboxResult, opts: BuildOptions): void {
  if (r.cancelled) throw new BuildFailure('build cancelled');
  if (r.timedOut) throw new BuildFailure(`build took longer than ${formatDuration(opts.timeoutSeconds)}`);
  if (r.setupFailed) throw new BuildFailure(`${what}: the build sandbox could not be set up`);
  if (r.code !== 0) throw new BuildFailure(`${what} failed (exit status ${r.code ?? r.signal})`);
}

type ToolRunner = (what: string, script: string, ...args: string[]) => Promise<void>;
type SandboxRunner = (what: string, o: Partial<Parameters<typeof runSandboxed>[0]> & { mode: 'image' | 'tools'; command: string[]; root: string }) => Promise<SandboxResult>;

/** `/bin/sh -ex SCRIPT`, or with `-c` the rest as one command, as Apptainer runs scriptlets. */
export function scriptArgs(args: string, scriptPath: string): string[] {
  const base = ['/bin/sh', '-ex'];
  const words = args.split(/\s+/).filter(Boolean);
  const c = words.indexOf('-c');
  if (c >= 0) return [...base, ...words.slice(0, c + 1), [...words.slice(c + 1), scriptPath].join(' ')];
  return [...base, ...words, scriptPath];
}

async function runScript(sandbox: SandboxRunner, root: Rootfs, s: Script, name: string, env: Record<string, string>, network = false): Promise<void> {
  await root.write(name, `${s.script}\n`, 0o755);
  try {
    const what = `%${name.slice(1, name.indexOf('.script'))}`;
    const command = ['/bin/sh', '-c', 'for f in /.singularity.d/env/*.sh; do [ -f "$f" ] && . "$f"; done; exec "$@"', 'shelf-env', ...scriptArgs(s.args, `/${name}`)];
    await sandbox(what, { mode: 'image', root: root.dir, command, network, env: { HOME: '/root', ...env } });
  } finally {
    await root.remove(name);
  }
}

/** A `%files` source in the context: relative ones under the client's working folder. */
function contextSource(src: string, workingDir: string): string {
  const abs = src.startsWith('/') ? src : path.posix.join(workingDir || '/', src);
  return `/work/context${path.posix.normalize(abs)}`;
}

const absolute = (p: string) => path.posix.normalize(p.startsWith('/') ? p : `/${p}`);

/** `cp -fLr SRC DST` in the tools sandbox, the source a glob, the destination inside the rootfs. */
async function copyInto(tools: ToolRunner, root: Rootfs, work: string, src: string, dst: string): Promise<void> {
  const trailing = dst.endsWith('/');
  const target = absolute(dst);
  const parent = trailing ? target : path.posix.dirname(target);
  await root.mkdirs(parent);
  const hostDst = await root.resolve(target, false);
  const dstInTools = `/work/${path.relative(work, hostDst)}${trailing ? '/' : ''}`;
  await tools(`%files ${src.replace(/^\/work\/(context|stage-\d+\/rootfs)/, '')}`, COPY_GLOB, src, dstInTools);
}

const COPY_GLOB = `src=$1; dst=$2
IFS='
'
set -- $src
if [ ! -e "$1" ] && [ ! -L "$1" ]; then echo "FATAL:   %files: no file matches \${src#/work/context}" >&2; exit 1; fi
cp -fLr -- "$@" "$dst"`;

/** Applies OCI layers in order, whiteouts first (opaque folders emptied, .wh. names removed). */
const APPLY_LAYERS = `stage=$1; shift
R="/work/$stage/rootfs"
mkdir -p "$R"
for L in "$@"; do
  tar -tf "/work/$L" | while IFS= read -r name; do
    name=\${name#./}
    case "/$name/" in */../*) continue ;; esac
    base=\${name##*/}; dir=\${name%"$base"}
    case "$base" in
      .wh..wh..opq) [ -d "$R/$dir" ] && find "$R/$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ;;
      .wh.*) rm -rf "$R/$dir\${base#.wh.}" ;;
    esac
  done
  tar -xf "/work/$L" -C "$R" --exclude='.wh.*' --exclude='./dev/*' --exclude='dev/*' --delay-directory-restore
  rm -f "/work/$L"
done`;

/** Offset of the primary squashfs partition and the image's oci-config.json, if any. */
async function sifPartition(file: string): Promise<{ offset: number; ociConfig: string | null }> {
  const source = await FileSource.open(file);
  try {
    const image = await readSif(source);
    if (isEncrypted(image.descriptors)) throw new BuildFailure('the base image is encrypted');
    const part = primaryPartition(image.descriptors);
    if (!part) throw new BuildFailure('the base image has no primary system partition');
    if (ENCRYPTED_FS_TYPES.has(part.extra.readInt32LE(0)) || part.extra.readInt32LE(0) !== 1) throw new BuildFailure('the base image partition is not squashfs');
    const cfg = image.descriptors.find((d) => d.dataType === 0x4006 && d.name === 'oci-config.json');
    return { offset: part.offset, ociConfig: cfg ? await readSmallText(source, cfg) : null };
  } finally {
    await source.close();
  }
}

/** `Bootstrap: localimage`: a SIF in the build context (how `shelf build --remote` sends it). */
async function localImage(def: Definition, contextDir: string, workingDir: string, rootId: number, stageDir: string): Promise<Bootstrap> {
  const from = def.header.from!;
  const ctx = new Rootfs(contextDir, rootId);
  const rel = path.posix.normalize(from.startsWith('/') ? from : path.posix.join(workingDir, from));
  const host = await ctx.resolve(rel);
  const st = await lstat(host).catch(() => null);
  if (!st?.isFile()) throw new BuildFailure(`Bootstrap: localimage: ${from} is not a file in the build context`);
  const file = path.join(stageDir, 'base.sif');
  await copyFile(host, file);
  return { kind: 'sif', file, name: from, digest: null };
}

const ELF_MACHINES: Record<number, string> = { 0x3e: 'amd64', 0xb7: 'arm64', 0x03: '386', 0x28: 'arm', 0x16: 's390x', 0xf3: 'riscv64', 0x102: 'loong64' };

/** The architecture of the rootfs's /bin/sh (its ELF header), as Apptainer decides it. */
export async function archOfRootfs(root: Rootfs): Promise<string | null> {
  const file = await root.resolve('bin/sh').catch(() => null);
  if (!file) return null;
  const h = await open(file, 'r').catch(() => null);
  if (!h) return null;
  try {
    const buf = Buffer.alloc(20);
    await h.read(buf, 0, 20, 0);
    if (buf.toString('latin1', 0, 4) !== '\x7fELF') return null;
    const little = buf[5] === 1;
    const machine = little ? buf.readUInt16LE(18) : buf.readUInt16BE(18);
    if (machine === 0x15) return little ? 'ppc64le' : 'ppc64';
    return ELF_MACHINES[machine] ?? null;
  } finally {
    await h.close();
  }
}

export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

