/**
 * Apptainer/SingularityCE definition files: the grammar `apptainer build` accepts (header keys,
 * sections, SCIF app sections, multi-stage files with `%files from STAGE`, `{{ arg }}` templates
 * filled from `%arguments`), parsed into a plain structure the builder runs.
 */

export class DefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DefinitionError';
  }
}

/** Header keys Apptainer knows (`otherurl<N>` aside); any other key is an error. */
export const HEADER_KEYS: ReadonlySet<string> = new Set([
  'bootstrap', 'from', 'includecmd', 'mirrorurl', 'updateurl', 'osversion', 'include', 'library', 'registry',
  'namespace', 'stage', 'product', 'user', 'regcode', 'productpgp', 'registerurl', 'modules', 'fingerprints',
  'confurl', 'setopt', 'target', 'frontend', 'filename', 'buildargs',
]);

export const SCRIPT_SECTIONS = ['help', 'setup', 'environment', 'pre', 'post', 'runscript', 'test', 'startscript'] as const;
export type ScriptSection = (typeof SCRIPT_SECTIONS)[number];
export const APP_SECTIONS = ['appinstall', 'applabels', 'appfiles', 'appenv', 'apptest', 'apphelp', 'apprun', 'appstart'] as const;
export type AppSection = (typeof APP_SECTIONS)[number];

export interface Script {
  /** The section text, trimmed (repeated sections are joined with a newline). */
  script: string;
  /** What followed the section name, e.g. `-c /bin/bash` in `%post -c /bin/bash`. */
  args: string;
}

export interface FileTransfer {
  src: string;
  /** Defaults to the source. */
  dst: string;
}

export interface FilesSection {
  /** `%files from STAGE`: the stage copied from; null for the build context/host. */
  fromStage: string | null;
  files: FileTransfer[];
}

export interface App {
  name: string;
  install?: Script;
  labels: Array<[string, string]>;
  files: FileTransfer[];
  env?: Script;
  test?: Script;
  help?: Script;
  run?: Script;
  start?: Script;
}

export interface Definition {
  /** Lower-cased header keys. */
  header: Record<string, string>;
  /** The header's `Stage:` name, if any. */
  stage: string | null;
  scripts: Partial<Record<ScriptSection, Script>>;
  files: FilesSection[];
  labels: Array<[string, string]>;
  /** `%arguments`: default values of build arguments. */
  arguments: Record<string, string>;
  apps: App[];
  /** This stage's own text. */
  raw: string;
  /** The whole file, every stage (what goes into the image as the deffile). */
  fullRaw: string;
}

const SECTION_LINE = /^\s*%(\S+)(.*)$/;
const COMMENT = /^\s*#/;
const STAGE_SPLIT = /^bootstrap:/im;

/** Every stage of a definition file, in order. */
export function parseDefinitionFile(text: string, buildArgs: Record<string, string> = {}): Definition[] {
  if (text.includes('\0')) throw new DefinitionError('the definition file contains a NUL byte');
  const fullRaw = text;
  if (!text.trim()) throw new DefinitionError('the definition file is empty');
  const starts: number[] = [];
  const re = new RegExp(STAGE_SPLIT.source, 'gim');
  for (let m = re.exec(text); m; m = re.exec(text)) starts.push(m.index);
  if (starts.length === 0) starts.push(0);
  // Text before the first Bootstrap line belongs to the first stage (comments, blank lines).
  starts[0] = 0;
  const pieces = starts.map((s, i) => text.slice(s, starts[i + 1] ?? text.length));
  const stages = pieces.map((raw) => parseStage(raw, fullRaw, buildArgs));
  const names = new Set<string>();
  stages.forEach((s, i) => {
    if (!s.header.bootstrap) throw new DefinitionError(`stage ${i + 1}: no Bootstrap header`);
    if (stages.length > 1 && i < stages.length - 1 && !s.stage) throw new DefinitionError(`stage ${i + 1}: a multi-stage build names every earlier stage with "Stage:"`);
    if (s.stage) {
      if (names.has(s.stage)) throw new DefinitionError(`stage name ${JSON.stringify(s.stage)} is used twice`);
      names.add(s.stage);
    }
    for (const f of s.files) {
      if (f.fromStage !== null && !names.has(f.fromStage)) throw new DefinitionError(`%files from ${f.fromStage}: no earlier stage of that name`);
      if (f.fromStage !== null && f.fromStage === s.stage) throw new DefinitionError(`%files from ${f.fromStage}: a stage cannot copy from itself`);
    }
  });
  return stages;
}

function parseStage(raw: string, fullRaw: string, buildArgs: Record<string, string>): Definition {
  const lines = raw.split(/\r?\n/);
  const headerLines: string[] = [];
  const sections: Array<{ name: string; args: string; body: string[] }> = [];
  for (const line of lines) {
    const m = SECTION_LINE.exec(line);
    if (m) {
      sections.push({ name: m[1]!.toLowerCase(), args: stripComment(m[2]!).trim(), body: [] });
    } else if (sections.length) {
      sections[sections.length - 1]!.body.push(line);
    } else {
      headerLines.push(line);
    }
  }

  const def: Definition = { header: {}, stage: null, scripts: {}, files: [], labels: [], arguments: {}, apps: [], raw, fullRaw };
  // Arguments first: templates anywhere else in the stage take their defaults from them.
  for (const s of sections.filter((x) => x.name === 'arguments')) {
    for (const line of s.body) {
      const t = line.trim();
      if (!t || COMMENT.test(t)) continue;
      const eq = t.indexOf('=');
      if (eq <= 0) throw new DefinitionError(`%arguments: "${t}" is not NAME=VALUE`);
      def.arguments[t.slice(0, eq).trim()] = t.slice(eq + 1).trim();
    }
  }
  const values = { ...def.arguments, ...buildArgs };
  const fill = (text: string) => substitute(text, values);

  parseHeader(headerLines.map(fill), def);
  const appByName = new Map<string, App>();
  const app = (name: string) => {
    let a = appByName.get(name);
    if (!a) {
      a = { name, labels: [], files: [] };
      appByName.set(name, a);
      def.apps.push(a);
    }
    return a;
  };
  for (const s of sections) {
    if (s.name === 'arguments') continue;
    const body = fill(s.body.join('\n'));
    if (s.name === 'files') {
      const m = /^from\s+(\S+)$/i.exec(s.args);
      if (s.args && !m) throw new DefinitionError(`%files ${s.args}: expected "%files" or "%files from STAGE"`);
      const fromStage = m ? m[1]! : null;
      const existing = def.files.find((f) => f.fromStage === fromStage);
      const files = parseFileLines(body, '%files');
      if (existing) existing.files.push(...files);
      else def.files.push({ fromStage, files });
    } else if (s.name === 'labels') {
      def.labels.push(...parseLabelLines(body));
    } else if ((SCRIPT_SECTIONS as readonly string[]).includes(s.name)) {
      const key = s.name as ScriptSection;
      def.scripts[key] = join(def.scripts[key], body, s.args);
    } else if ((APP_SECTIONS as readonly string[]).includes(s.name)) {
      const name = s.args.split(/\s+/)[0] ?? '';
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new DefinitionError(`%${s.name}: needs an app name (letters, digits, _ . -), got ${JSON.stringify(s.args)}`);
      const a = app(name);
      const rest = s.args.slice(name.length).trim();
      switch (s.name as AppSection) {
        case 'appinstall': a.install = join(a.install, body, rest); break;
        case 'applabels': a.labels.push(...parseLabelLines(body)); break;
        case 'appfiles': a.files.push(...parseFileLines(body, '%appfiles')); break;
        case 'appenv': a.env = join(a.env, body, rest); break;
        case 'apptest': a.test = join(a.test, body, rest); break;
        case 'apphelp': a.help = join(a.help, body, rest); break;
        case 'apprun': a.run = join(a.run, body, rest); break;
        case 'appstart': a.start = join(a.start, body, rest); break;
      }
    } else {
      throw new DefinitionError(`invalid section %${s.name}`);
    }
  }
  return def;
}

function join(prev: Script | undefined, body: string, args: string): Script {
  const script = body.trim();
  if (!prev) return { script, args };
  return { script: prev.script && script ? `${prev.script}\n${script}` : prev.script || script, args: prev.args || args };
}

/** `#` starts a comment anywhere on a header or section line. */
function stripComment(text: string): string {
  const i = text.indexOf('#');
  return i < 0 ? text : text.slice(0, i);
}

function parseHeader(lines: string[], def: Definition): void {
  let pending: { key: string; value: string } | null = null;
  const commit = (p: { key: string; value: string }) => {
    const key = p.key;
    if (!HEADER_KEYS.has(key) && !/^otherurl\d+$/.test(key)) throw new DefinitionError(`invalid header keyword found: ${key}`);
    def.header[key] = p.value.trim();
  };
  for (const rawLine of lines) {
    const line = stripComment(rawLine).replace(/\s+$/, '');
    if (pending) {
      if (line.endsWith('\\')) {
        pending.value += continuation(line.slice(0, -1));
        continue;
      }
      pending.value += line.trim();
      commit(pending);
      pending = null;
      continue;
    }
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new DefinitionError(`header line "${line.trim()}" is not KEY: VALUE`);
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1);
    if (value.endsWith('\\')) {
      pending = { key, value: continuation(value.slice(0, -1)) };
      continue;
    }
    commit({ key, value });
  }
  if (pending) commit(pending);
  def.stage = def.header.stage || null;
}

/** A continued header value: a literal `\n` before the backslash becomes a real newline. */
function continuation(text: string): string {
  const t = text.trim();
  return t.endsWith('\\n') ? `${t.slice(0, -2)}\n` : `${t} `;
}

/** One `src [dst]` per line; double or single quotes keep spaces; `{{ … }}` stays one word. */
function parseFileLines(body: string, section: string): FileTransfer[] {
  const out: FileTransfer[] = [];
  for (const line of body.split('\n')) {
    const t = line.trim();
    if (!t || COMMENT.test(t)) continue;
    const words = splitWords(t);
    if (words.length > 2) throw new DefinitionError(`${section}: "${t}" has more than a source and a destination (quote names with spaces)`);
    out.push({ src: words[0]!, dst: words[1] ?? words[0]! });
  }
  return out;
}

function splitWords(line: string): string[] {
  const words: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|((?:\{\{.*?\}\}|[^\s"'])+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

function parseLabelLines(body: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of body.split('\n')) {
    const t = line.trim();
    if (!t || COMMENT.test(t)) continue;
    const m = /^(\S+)\s*(.*)$/.exec(t)!;
    out.push([m[1]!, m[2]!.trim()]);
  }
  return out;
}

/** `{{ name }}` from the build arguments; an argument with no value is an error. */
function substitute(text: string, values: Record<string, string>): string {
  return text.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new DefinitionError(`build argument ${name} has no value (give it a default in %arguments)`);
    return v;
  });
}
