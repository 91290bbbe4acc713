import type { Rootfs } from './rootfs.js';

/**
 * The `/.singularity.d` layout every Apptainer image has: the folders the runtime binds onto,
 * the action scripts (`run`, `exec`, `shell`, `start`, `test`) that source `env/*.sh` in order,
 * the environment scripts, and the top-level compatibility symlinks. Texts are Shelf's own,
 * with the behaviour the runtime expects.
 */

const SOURCE_ENV = `for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
`;

const appEnv = `if [ -n "\${SINGULARITY_APPNAME:-}" ] && [ -d "/scif/apps/\${SINGULARITY_APPNAME}" ]; then
    for script in /scif/apps/"\${SINGULARITY_APPNAME}"/scif/env/*.sh; do
        [ -f "$script" ] && . "$script"
    done
fi
`;

const action = (body: string) => `#!/bin/sh
# Shelf builder: sources the container's environment, then ${body.split('\n')[0]!.replace(/^# /, '')}
${SOURCE_ENV}${appEnv}${body.split('\n').slice(1).join('\n')}`;

export const ACTIONS: Record<string, string> = {
  exec: action(`# runs the given command.
exec "$@"
`),
  run: action(`# runs the runscript (of the app in SINGULARITY_APPNAME, if any).
if [ -n "\${SINGULARITY_APPNAME:-}" ]; then
    if [ -x "/scif/apps/\${SINGULARITY_APPNAME}/scif/runscript" ]; then
        exec "/scif/apps/\${SINGULARITY_APPNAME}/scif/runscript" "$@"
    fi
    echo "No runscript for app \${SINGULARITY_APPNAME} found" >&2
    exit 1
fi
if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "No runscript found" >&2
exit 1
`),
  shell: action(`# starts a shell.
if [ -n "\${SINGULARITY_SHELL:-}" ] && [ -x "$SINGULARITY_SHELL" ]; then
    exec "$SINGULARITY_SHELL" "$@"
fi
if [ -x /bin/bash ]; then
    exec /bin/bash --norc "$@"
fi
exec /bin/sh "$@"
`),
  start: action(`# runs the startscript (instances).
if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript "$@"
fi
`),
  test: action(`# runs the test script (of the app in SINGULARITY_APPNAME, if any).
if [ -n "\${SINGULARITY_APPNAME:-}" ]; then
    if [ -x "/scif/apps/\${SINGULARITY_APPNAME}/scif/test" ]; then
        exec "/scif/apps/\${SINGULARITY_APPNAME}/scif/test" "$@"
    fi
    echo "No tests for app \${SINGULARITY_APPNAME} found" >&2
    exit 1
fi
if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "No test script found" >&2
exit 1
`),
};

export const ENV_FILES: Record<string, string> = {
  '01-base.sh': '#!/bin/sh\n# Base environment of the container (written by the Shelf builder).\n',
  '90-environment.sh': '#!/bin/sh\n# Custom environment shell code should follow\n\n',
  '95-apps.sh': `#!/bin/sh
# SCIF apps: each app's bin and lib folders, and SCIF_APP* variables.
SCIF_APPROOT=/scif/apps
export SCIF_APPROOT
for app in /scif/apps/*; do
    [ -d "$app/scif" ] || continue
    name=\${app##*/}
    upper=$(echo "$name" | tr '[:lower:].-' '[:upper:]__')
    eval "SCIF_APPROOT_$upper=$app SCIF_APPBIN_$upper=$app/bin SCIF_APPLIB_$upper=$app/lib"
    eval "export SCIF_APPROOT_$upper SCIF_APPBIN_$upper SCIF_APPLIB_$upper"
done
if [ -n "\${SINGULARITY_APPNAME:-}" ] && [ -d "/scif/apps/\${SINGULARITY_APPNAME}" ]; then
    SCIF_APPNAME=$SINGULARITY_APPNAME
    export SCIF_APPNAME
    PATH="/scif/apps/\${SINGULARITY_APPNAME}/bin:$PATH"
    LD_LIBRARY_PATH="/scif/apps/\${SINGULARITY_APPNAME}/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PATH LD_LIBRARY_PATH
fi
`,
  '99-base.sh': `#!/bin/sh
# The runtime's library folder, and the prompt.
if [ -z "\${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH=/.singularity.d/libs
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi
PS1="Singularity> "
export LD_LIBRARY_PATH PS1
`,
  '99-runtimevars.sh': `#!/bin/sh
# PATH changes asked for at run time (--env PATH, PREPEND_PATH, APPEND_PATH).
if [ -n "\${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="$SING_USER_DEFINED_PREPEND_PATH:$PATH"
fi
if [ -n "\${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="$PATH:$SING_USER_DEFINED_APPEND_PATH"
fi
if [ -n "\${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="$SING_USER_DEFINED_PATH"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
`,
};

export const DEFAULT_RUNSCRIPT = '#!/bin/sh\n\necho "There is no runscript defined for this container"\n';
export const DEFAULT_STARTSCRIPT = '#!/bin/sh\n';

/**
 * Apptainer's base environment. `overwrite`: the scripts replace what the image has (library,
 * oras, scratch: the bootstrap's own files win when unpacked afterwards); false keeps them
 * (localimage).
 */
export async function makeBaseEnv(root: Rootfs, overwrite: boolean): Promise<void> {
  for (const d of ['.singularity.d/libs', '.singularity.d/actions', '.singularity.d/env', 'dev', 'proc', 'root', 'var/tmp', 'tmp', 'etc', 'sys', 'home']) {
    if (!(await root.exists(d))) await root.mkdirs(d, d === 'tmp' || d === 'var/tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755);
  }
  await root.link('singularity', '.singularity.d/runscript');
  for (const a of ['run', 'exec', 'test', 'shell']) await root.link(`.${a}`, `.singularity.d/actions/${a}`);
  await root.link('environment', '.singularity.d/env/90-environment.sh');
  await root.write('etc/hosts', '', 0o644, false);
  await root.write('etc/resolv.conf', '', 0o644, false);
  for (const [name, text] of Object.entries(ACTIONS)) await root.write(`.singularity.d/actions/${name}`, text, 0o755, overwrite);
  for (const [name, text] of Object.entries(ENV_FILES)) await root.write(`.singularity.d/env/${name}`, text, 0o755, overwrite);
  await root.write('.singularity.d/runscript', DEFAULT_RUNSCRIPT, 0o755, overwrite);
  await root.write('.singularity.d/startscript', DEFAULT_STARTSCRIPT, 0o755, overwrite);
}
