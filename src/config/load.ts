import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Plain = { [key: string]: unknown };

/**
 * One typed config from defaults < YAML file < SHELF_* environment < flags.
 * Every key is reachable from the environment by its path: `library.multipartPartSize`
 * is `SHELF_LIBRARY_MULTIPART_PART_SIZE`.
 */
export async function loadConfig(opts: {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  flags?: Plain;
}): Promise<Config> {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.SHELF_CONFIG;
  let fromFile: Plain = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    try {
      fromFile = (parseYaml(text) as Plain | null) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof fromFile !== 'object' || Array.isArray(fromFile)) {
      throw new ConfigError(`config file ${file} must hold a YAML mapping`);
    }
  }
  const merged = deepMerge(deepMerge(fromFile, fromEnvironment(env)), stripUndefined(opts.flags ?? {}));
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(`invalid configuration: ${describeIssues(result.error)}`);
  }
  return result.data;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

const toEnvName = (path: string[]): string =>
  'SHELF_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');

/** Walks the schema's shape so every key, nested or not, has its environment variable. */
function fromEnvironment(env: NodeJS.ProcessEnv): Plain {
  const out: Plain = {};
  const walk = (shape: Record<string, z.ZodType>, path: string[], target: Plain): void => {
    for (const [key, type] of Object.entries(shape)) {
      const inner = unwrap(type);
      if (inner instanceof z.ZodObject) {
        const child: Plain = {};
        walk(inner.shape as Record<string, z.ZodType>, [...path, key], child);
        if (Object.keys(child).length) target[key] = child;
        continue;
      }
      const value = env[toEnvName([...path, key])];
      if (value === undefined || value === '') continue;
      target[key] = coerce(inner, value);
    }
  };
  walk(configSchema.shape as unknown as Record<string, z.ZodType>, [], out);
  return out;
}

function unwrap(type: z.ZodType): z.ZodType {
  let t: z.ZodType = type;
  for (;;) {
    if (t instanceof z.ZodDefault || t instanceof z.ZodOptional || t instanceof z.ZodPrefault) {
      t = t.unwrap() as z.ZodType;
    } else if (t instanceof z.ZodPipe) {
      t = t.in as z.ZodType;
    } else {
      return t;
    }
  }
}

function coerce(type: z.ZodType, value: string): unknown {
  if (type instanceof z.ZodNumber) return Number(value);
  if (type instanceof z.ZodBoolean) return value === 'true' || value === '1';
  if (type instanceof z.ZodArray) return value.split(',').map((v) => v.trim()).filter(Boolean);
  if (type instanceof z.ZodUnion) return /^\d+$/.test(value) ? Number(value) : value;
  return value;
}

function stripUndefined(obj: Plain): Plain {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}

function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const prev = out[k];
    out[k] =
      isPlain(prev) && isPlain(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);
