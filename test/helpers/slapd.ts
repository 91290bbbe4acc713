import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './net.js';

export const LDAP_SUFFIX = 'dc=shelf,dc=test';
export const LDAP_PEOPLE = `ou=people,${LDAP_SUFFIX}`;
export const LDAP_ADMIN_DN = `cn=admin,${LDAP_SUFFIX}`;
export const LDAP_ADMIN_PASSWORD = 'directory-admin';

export interface LdapPerson {
  uid: string;
  password: string;
  /** Marked `employeeType: shelf-admin`. */
  admin?: boolean;
  /** Put a second entry with the same uid elsewhere (an ambiguous name). */
  duplicate?: boolean;
}

/** `shelf serve` environment for signing in against `slapd` with the directory's admin as service account. */
export function ldapEnv(slapd: Slapd): Record<string, string> {
  return {
    SHELF_LDAP_URL: slapd.url,
    SHELF_LDAP_USER_BASE: LDAP_SUFFIX,
    SHELF_LDAP_BIND_DN: LDAP_ADMIN_DN,
    SHELF_LDAP_BIND_PASSWORD: LDAP_ADMIN_PASSWORD,
  };
}

export interface Slapd {
  url: string;
  stop(): Promise<void>;
}

function ldif(people: LdapPerson[]): string {
  const entries = [
    `dn: ${LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Shelf\ndc: shelf`,
    `dn: ${LDAP_PEOPLE}\nobjectClass: organizationalUnit\nou: people`,
    `dn: ou=others,${LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: others`,
  ];
  for (const p of people) {
    const person = (base: string) =>
      `dn: uid=${p.uid},${base}\nobjectClass: inetOrgPerson\nuid: ${p.uid}\ncn: ${p.uid}\nsn: ${p.uid}\nuserPassword: ${p.password}` +
      (p.admin ? '\nemployeeType: shelf-admin' : '');
    entries.push(person(LDAP_PEOPLE));
    if (p.duplicate) entries.push(person(`ou=others,${LDAP_SUFFIX}`));
  }
  return entries.join('\n\n') + '\n';
}

/** Starts Debian's OpenLDAP `slapd` on a free loopback port with a throwaway database holding `people`. */
export async function startSlapd(people: LdapPerson[]): Promise<Slapd> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-slapd-'));
  await mkdir(path.join(dir, 'db'));
  const conf = path.join(dir, 'slapd.conf');
  await writeFile(
    conf,
    [
      ...['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `include /etc/ldap/schema/${s}.schema`),
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      `pidfile ${dir}/slapd.pid`,
      'database mdb',
      `suffix "${LDAP_SUFFIX}"`,
      `rootdn "${LDAP_ADMIN_DN}"`,
      `rootpw ${LDAP_ADMIN_PASSWORD}`,
      `directory ${dir}/db`,
      'access to attrs=userPassword by anonymous auth by self write by * none',
      'access to * by users read by anonymous read',
      '',
    ].join('\n'),
  );
  await writeFile(path.join(dir, 'data.ldif'), ldif(people));
  const load = spawnSync('slapadd', ['-f', conf, '-l', path.join(dir, 'data.ldif')], { encoding: 'utf8' });
  if (load.status !== 0) throw new Error(`slapadd failed: ${load.stderr}`);

  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  // -d 0 keeps slapd in the foreground, so the test owns its lifetime.
  const child: ChildProcess = spawn('slapd', ['-f', conf, '-h', `${url}/`, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = spawnSync('ldapsearch', ['-x', '-H', url, '-b', LDAP_SUFFIX, '-s', 'base', 'dn'], { encoding: 'utf8' });
    if (probe.status === 0) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`slapd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
