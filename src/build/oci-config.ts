/** The parts of an OCI image config the builder turns into an image's environment and runscript. */
export interface OciRuntimeConfig {
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
}

export interface OciImageConfig {
  architecture?: string;
  os?: string;
  config?: OciRuntimeConfig;
}

/** A word for a POSIX shell, single-quoted. */
export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * `/.singularity.d/env/10-docker2singularity.sh`: the image's Env, each only when not already
 * set (the user's environment wins, as with Apptainer), PATH always.
 */
export function dockerEnvScript(cfg: OciRuntimeConfig): string {
  const lines = ['#!/bin/sh', '# Environment of the OCI image this container was built from.'];
  for (const entry of cfg.Env ?? []) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
    const value = entry.slice(eq + 1);
    lines.push(name === 'PATH' ? `export PATH=${shellQuote(value)}` : `[ -n "\${${name}+set}" ] || { ${name}=${shellQuote(value)}; export ${name}; }`);
  }
  return `${lines.join('\n')}\n`;
}

/** The runscript of an OCI image: ENTRYPOINT, then the arguments given or CMD. */
export function dockerRunscript(cfg: OciRuntimeConfig): string {
  const entry = (cfg.Entrypoint ?? []).map(shellQuote).join(' ');
  const cmd = (cfg.Cmd ?? []).map(shellQuote).join(' ');
  const cd = cfg.WorkingDir ? `cd ${shellQuote(cfg.WorkingDir)} 2>/dev/null || true\n` : '';
  if (!entry && !cmd) return '#!/bin/sh\n\nexec /bin/sh "$@"\n';
  const body = entry
    ? `if [ $# -gt 0 ]; then\n    exec ${entry} "$@"\nfi\nexec ${entry}${cmd ? ` ${cmd}` : ''}\n`
    : `if [ $# -gt 0 ]; then\n    exec "$@"\nfi\nexec ${cmd}\n`;
  return `#!/bin/sh\n\n${cd}${body}`;
}
