import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { assertAccessible, eventually, launchBrowser, screenshotDir, signInWithPassword, type TestBrowser } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const orasclient = path.join(CLIENTS, 'orasclient');
const fixture = (name: string) => path.join(FIXTURES, name);
const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

describe('web UI: browse, search, container page, accessibility (Debian chromium)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let browser: TestBrowser;
  let page: Page;
  let shots: string;
  let work: string;
  let host: string;
  const text = async (selector: string) => (await page.locator(selector).allInnerTexts()).join('\n');
  const noHorizontalScroll = () => page.evaluate<boolean>('document.documentElement.scrollWidth <= document.documentElement.clientWidth');
  const lib = (...args: string[]) => run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, ...args]);

  const axe = (what: string) => assertAccessible(page, what);

  const signIn = () => signInWithPassword(page, shelf.url, 'admin', 'admin-password-1');

  before(async () => {
    shelf = await startShelf();
    host = new URL(shelf.url).host;
    shots = await screenshotDir();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-ui-browse-'));
    assert.equal((await api(shelf)('/api/users/admin/password', { method: 'PUT', body: JSON.stringify({ password: 'admin-password-1' }) })).status, 200);
    // 21 containers first (the start page shows the 20 pushed last), so that search results come in two pages of 20.
    for (let i = 0; i < 21; i += 3) {
      await Promise.all([0, 1, 2].map((j) => lib('push', fixture('minimal-amd64.sif'), `admin/many/item${String(i + j).padStart(2, '0')}:v1`).then((r) => assert.equal(r.code, 0, r.stderr))));
    }
    const pushes: Array<string[]> = [
      ['push', fixture('minimal-amd64.sif'), 'admin/tools/multi:latest', '--arch', 'amd64', '--desc', 'a tool for two architectures'],
      ['push', fixture('minimal-arm64.sif'), 'admin/tools/multi:latest', '--arch', 'arm64', '--desc', 'a tool for two architectures'],
      ['push', fixture('signed-pgp-rsa.sif'), 'admin/tools/signed:1.0'],
      ['push', fixture('labels-object-amd64.sif'), 'admin/secret/hidden:1.0'],
    ];
    for (const args of pushes) {
      const r = await lib(...args);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await api(shelf)('/api/visibility/admin/secret', { method: 'PUT', body: JSON.stringify({ private: true }) })).status, 200);
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await shelf?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('start page: arch and signature badges, size, last pushed, push -D description, browse-all', async () => {
    await page.goto(shelf.url);
    await page.locator('.cards').waitFor();
    const card = page.locator('.card', { hasText: 'admin/tools/multi' });
    const cardText = await card.innerText();
    assert.match(cardText, /a tool for two architectures/, 'the image description stands in for the placeholder');
    assert.match(cardText, /amd64/);
    assert.match(cardText, /arm64/);
    assert.match(cardText, /unsigned/);
    assert.match(cardText, /\d+(\.\d+)? KiB · last pushed \d{4}-\d\d-\d\d/);
    assert.doesNotMatch(await text('.cards'), /admin\/secret\/hidden/, 'signed out: private content is not listed');
    assert.equal(await page.title(), 'Shelf container library · Shelf');
    await axe('start page');
    await page.getByRole('link', { name: 'Browse all containers' }).click();
    await page.waitForURL(/\/search$/);
    await page.getByRole('status').filter({ hasText: 'containers' }).waitFor();
    assert.equal(await page.title(), 'All containers · Shelf');
  });

  test('search: results as you type, one entry per container with what matched, arch and signed filters, show more', async () => {
    await page.goto(`${shelf.url}/search`);
    await page.locator('#search-text').waitFor();
    await page.locator('#search-text').focus();
    await page.keyboard.type('two arch');
    await page.waitForURL(/\/search\?q=two\+arch/);
    await page.getByRole('status').filter({ hasText: '1 containers' }).waitFor();
    assert.equal(await page.locator('.card').count(), 1, 'one entry for the container, not one per image');
    assert.match(await text('.card .matched'), /Description: a tool for two architectures/);
    assert.equal(await page.title(), 'Search: two arch · Shelf');

    await page.locator('#search-text').fill('');
    await page.selectOption('#search-arch', 'arm64');
    await page.waitForURL(/arch=arm64/);
    await eventually(async () => assert.deepEqual(await page.locator('.card h3 a').allInnerTexts(), ['admin/tools/multi']));
    await page.selectOption('#search-arch', '');
    await page.getByLabel('Signed and verified only').check();
    await page.waitForURL(/signed=true/);
    // The signer's key is not on this server: nothing verifies yet.
    await page.getByRole('status').filter({ hasText: 'Nothing matches.' }).waitFor();
    await page.getByLabel('Signed and verified only').uncheck();

    await page.locator('#search-text').fill('item');
    await page.getByRole('status').filter({ hasText: '20+ containers' }).waitFor();
    await axe('search page');
    await page.getByRole('button', { name: 'Show more' }).click();
    await eventually(async () => assert.equal(await page.locator('.card').count(), 21));
    assert.equal(await page.getByRole('button', { name: 'Show more' }).count(), 0);
    await page.screenshot({ path: path.join(shots, 'search-filters.png'), fullPage: true });
  });

  test('container page: one pull box; every command works with the real clients; download named after the tag', async () => {
    await page.goto(`${shelf.url}/library/admin/tools/multi`);
    await page.locator('.pulls').waitFor();
    assert.equal(await page.title(), 'admin/tools/multi · Shelf');
    assert.match(await text('.description'), /a tool for two architectures/);
    const lines = async () => (await page.locator('.pulls code').allInnerTexts()).map((l) => l.trim());
    await page.selectOption('#pull-tag', { label: 'latest (arm64)' });
    const arm = await lines();
    const libLine = arm.find((l) => l.includes('library://') && l.startsWith('apptainer'))!;
    assert.equal(libLine, `apptainer pull --no-https --arch arm64 multi_latest.sif library://${host}/admin/tools/multi:latest`);
    assert.ok(arm.includes(`apptainer pull --no-https --arch arm64 multi_latest.sif oras://${host}/admin/tools/multi:latest`));
    const byDigest = arm.find((l) => /oras:\/\/.*@sha256:/.test(l))!;
    assert.match(byDigest, new RegExp(`^apptainer pull --no-https multi_latest\\.sif oras://${host}/admin/tools/multi@sha256:[0-9a-f]{64}$`));
    assert.ok(arm.includes(`shelf remote add shelf http://${host}`));
    assert.ok(arm.includes(`shelf pull --arch arm64 multi_latest.sif library://${host}/admin/tools/multi:latest`));

    // Pasted: the library line with the real Library client (--no-https: plain http), the digest line with oras-go (an old client: no index).
    const out = (name: string) => path.join(work, name);
    const viaLib = await run(libclient, ['--url', `http://${host}`, 'pull', `${host}/admin/tools/multi:latest`, out('lib.sif'), '--arch', 'arm64']);
    assert.equal(viaLib.code, 0, viaLib.stderr);
    assert.equal(await sha(out('lib.sif')), await sha(fixture('minimal-arm64.sif')));
    const viaOras = await run(orasclient, ['--plain-http', 'pull', byDigest.split(' ').at(-1)!, out('oras.sif')]);
    assert.equal(viaOras.code, 0, viaOras.stderr);
    assert.equal(await sha(out('oras.sif')), await sha(fixture('minimal-arm64.sif')));
    const indexTag = await run(orasclient, ['--plain-http', 'pull', `oras://${host}/admin/tools/multi:latest`, out('index.sif')]);
    assert.notEqual(indexTag.code, 0, 'an Apptainer 1.0–1.2 style client cannot pull the index tag: hence the digest line');
    // The shelf line, after the remote line.
    const { shelfCli } = await import('../helpers/cli.js');
    const cli = await shelfCli();
    try {
      assert.equal((await cli.run(['remote', 'add', 'shelf', `http://${host}`])).code, 0);
      const shelfPull = await cli.run([...arm.find((l) => l.startsWith('shelf pull'))!.split(' ').slice(1).map((a) => (a.endsWith('.sif') ? out(a) : a))]);
      assert.equal(shelfPull.code, 0, shelfPull.stderr);
    } finally {
      await rm(cli.home, { recursive: true, force: true });
    }

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /^Download multi_latest\.sif/ }).click()]);
    assert.equal(download.suggestedFilename(), 'multi_latest.sif');
    assert.equal(await sha(await download.path()), await sha(fixture('minimal-arm64.sif')));
    await axe('container page');
    await page.screenshot({ path: path.join(shots, 'container-multi-arch.png'), fullPage: true });

    // A single-architecture tag: the oras:// tag line works as pasted.
    await page.goto(`${shelf.url}/library/admin/many/item00`);
    await page.locator('.pulls').waitFor();
    const single = (await lines()).find((l) => l.includes('oras://'))!;
    assert.equal(single, `apptainer pull --no-https --arch amd64 item00_v1.sif oras://${host}/admin/many/item00:v1`);
    const r = await run(orasclient, ['--plain-http', 'pull', single.split(' ').at(-1)!, out('single.sif')]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('unknown-key signature: fingerprint and how to make it verify', async () => {
    await eventually(async () => {
      await page.goto(`${shelf.url}/library/admin/tools/signed`);
      await page.locator('ul.signers').waitFor({ timeout: 3000 });
      assert.match(await text('ul.signers'), /unknown key\s+5D60487627A589F3F579EF9D8802BDF6FAF76328/);
    });
    assert.match(await text('ul.signers'), /apptainer key push 5D60487627A589F3F579EF9D8802BDF6FAF76328/);
    await page.goto(`${shelf.url}/`);
    await page.locator('.cards').waitFor();
    assert.match(await page.locator('.card', { hasText: 'admin/tools/signed' }).innerText(), /signed, unknown key/);
    await page.goto(`${shelf.url}/library/admin/tools/signed`);
    await page.locator('ul.signers').waitFor();
    await page.screenshot({ path: path.join(shots, 'container-unknown-key-hint.png'), fullPage: true });
  });

  test('unknown pages get the UI 404; a private page signed out offers a sign-in; the title follows', async () => {
    const html = await fetch(`${shelf.url}/no/such/page`, { headers: { accept: 'text/html' } });
    assert.equal(html.status, 404);
    assert.match(html.headers.get('content-type') ?? '', /text\/html/);
    const json = await fetch(`${shelf.url}/v1/no-such-endpoint`, { headers: { accept: 'text/html' } });
    assert.equal(json.status, 404);
    assert.match(json.headers.get('content-type') ?? '', /json/);
    assert.equal((await fetch(`${shelf.url}/no/such/page`)).status, 404);
    await page.goto(`${shelf.url}/no/such/page`);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    assert.equal(await page.title(), 'Not found · Shelf');
    await axe('404 page');
    await page.goto(`${shelf.url}/library/admin/secret/hidden`);
    await page.getByRole('alert').waitFor();
    await page.getByRole('alert').getByRole('link', { name: 'sign in' }).click();
    await page.waitForURL(/\/signin\?next=/);
    await page.fill('#username', 'admin');
    await page.fill('#password', 'admin-password-1');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/library\/admin\/secret\/hidden$/);
    await page.locator('.visibility').waitFor();
    assert.match(await text('.visibility'), /Visibility: private, because the collection admin\/secret is private\./);
    assert.equal(await page.getByRole('button', { name: 'Make private' }).count(), 0, 'no toggle that would change nothing');
  });

  test('owners edit descriptions of entity, collection and container', async () => {
    for (const [url, value] of [
      ['/library/admin', 'The administrators’ images'],
      ['/library/admin/tools', 'Everyday tools'],
      ['/library/admin/tools/multi', 'Edited by the owner'],
    ] as const) {
      await page.goto(`${shelf.url}${url}`);
      await page.getByRole('button', { name: 'Edit description' }).click();
      await page.fill('#description-text', value);
      await page.getByRole('button', { name: 'Save description' }).click();
      await page.getByRole('status').filter({ hasText: 'Description saved.' }).waitFor();
      assert.match(await text('.description'), new RegExp(value));
      await page.reload();
      await page.locator('.description').waitFor();
      assert.match(await text('.description'), new RegExp(value));
    }
    await axe('entity page');
    const anonymous = await fetch(`${shelf.url}/api/descriptions/admin/tools`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"description":"x"}' });
    assert.equal(anonymous.status, 401);
  });

  test('signed-in pages pass axe in light and dark mode; phone width 390 px has no sideways scrolling', async () => {
    await signIn();
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const url of ['/', '/tokens', '/account', '/admin', '/library/admin/tools/multi', '/library/admin/tools', '/signin']) {
        await page.goto(`${shelf.url}${url}`);
        await page.locator('main h1').waitFor();
        await page.waitForLoadState('networkidle');
        await axe(`${url} (${scheme})`);
      }
      // The keyboard focus ring: at least 3:1 against the page and panel backgrounds (WCAG 1.4.11), 2 px or wider.
      await page.goto(`${shelf.url}/`);
      await page.locator('main h1').waitFor();
      await page.keyboard.press('Tab');
      // A string, so the bundler's helpers for named functions do not reach the page.
      const ring = (await page.evaluate(`(() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        const root = getComputedStyle(document.documentElement);
        const backgrounds = ['--bg', '--panel'].map((name) => {
          const d = document.createElement('div');
          d.style.color = root.getPropertyValue(name);
          document.body.append(d);
          const c = getComputedStyle(d).color;
          d.remove();
          return c;
        });
        return { tag: el.tagName, color: style.outlineColor, style: style.outlineStyle, width: parseFloat(style.outlineWidth), backgrounds };
      })()`)) as { tag: string; color: string; style: string; width: number; backgrounds: string[] };
      const luminance = (rgb: string) => {
        const [r, g, b] = (rgb.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => Number(v) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
        return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
      };
      const ratio = (a: string, b: string) => {
        const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
        return (hi! + 0.05) / (lo! + 0.05);
      };
      assert.equal(ring.style, 'solid', `${scheme}: the focused ${ring.tag} shows an outline`);
      assert.ok(ring.width >= 2, `${scheme}: focus ring ${ring.width}px`);
      for (const bg of ring.backgrounds) assert.ok(ratio(ring.color, bg) >= 3, `${scheme}: focus ring ${ring.color} on ${bg} is ${ratio(ring.color, bg).toFixed(2)}:1`);
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${shelf.url}/tokens`);
    await page.fill('#token-name', 'phone');
    await page.selectOption('#token-expiry', '30');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.locator('.new-token code').waitFor();
    assert.equal(await page.inputValue('#token-expiry'), '30', 'the expiry stays as chosen');
    for (const url of ['/tokens', '/library/admin/tools/multi', '/search?q=item', '/admin']) {
      await page.goto(`${shelf.url}${url}`);
      await page.locator('main h1').waitFor();
      await page.waitForLoadState('networkidle');
      assert.ok(await noHorizontalScroll(), `no horizontal scrolling on ${url}`);
    }
    await page.goto(`${shelf.url}/library/admin/tools/multi`);
    await page.locator('table.tags').waitFor();
    const cell = await page.locator('table.tags td[data-label="Signature"]').first().boundingBox();
    assert.ok(cell && cell.x >= 0 && cell.x + cell.width <= 390, `the signature column is on screen: ${JSON.stringify(cell)}`);
    await page.screenshot({ path: path.join(shots, 'container-tags-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1200, height: 900 });
  });

  test('tokens: revoking asks first and says it is done; admins cannot disable themselves', async () => {
    await page.goto(`${shelf.url}/tokens`);
    await page.locator('.token-list').waitFor();
    page.once('dialog', (d) => void d.dismiss());
    await page.getByRole('button', { name: 'Revoke token phone' }).click();
    assert.equal(await page.getByRole('button', { name: 'Revoke token phone' }).count(), 1, 'dismissed: still there');
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Revoke token phone' }).click();
    await page.getByRole('status').filter({ hasText: 'Token phone revoked.' }).waitFor();
    await page.goto(`${shelf.url}/admin`);
    await page.locator('table.stacked').first().waitFor();
    const adminRow = page.locator('tr', { hasText: 'admin (admin)' });
    assert.equal(await adminRow.getByRole('button', { name: /Disable/ }).count(), 0);
    assert.match(await adminRow.innerText(), /\(you\)/);
  });
  test('a private container: the pull box says to sign in first, and those lines work when pasted', async () => {
    await page.goto(`${shelf.url}/`);
    await page.locator('main h1').waitFor();
    if (!(await page.getByRole('button', { name: 'Sign out' }).count())) await signIn();
    await page.goto(`${shelf.url}/library/admin/secret/hidden`);
    await page.locator('.pulls').waitFor();
    const lines = (await page.locator('.pulls code').allInnerTexts()).map((l) => l.trim());
    assert.match(await text('.pulls'), /Private: sign in first \(password: an access token\)/);
    const registryLogin = lines.find((l) => l.startsWith('apptainer registry login'))!;
    assert.equal(registryLogin, `apptainer registry login --username YOUR_NAME oras://${host}`);
    assert.ok(lines.includes('shelf remote login shelf --token-stdin'));
    const out = (name: string) => path.join(work, name);
    // The registry login, as oras-go does it for Apptainer, then the oras:// line.
    const orasLine = lines.find((l) => l.includes('oras://') && l.startsWith('apptainer pull'))!;
    const anonymous = await run(orasclient, ['--plain-http', 'pull', orasLine.split(' ').at(-1)!, out('private-anon.sif')]);
    assert.notEqual(anonymous.code, 0, 'private: not without signing in');
    const signedIn = await run(orasclient, ['--plain-http', '--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', orasLine.split(' ').at(-1)!, out('private-oras.sif')]);
    assert.equal(signedIn.code, 0, signedIn.stderr);
    assert.equal(await sha(out('private-oras.sif')), await sha(fixture('labels-object-amd64.sif')));
    // The shelf lines in order: remote add, remote login with the token on standard input, pull.
    const { shelfCli } = await import('../helpers/cli.js');
    const cli = await shelfCli();
    try {
      assert.equal((await cli.run(['remote', 'add', 'shelf', `http://${host}`])).code, 0);
      const login = await cli.run(['remote', 'login', 'shelf', '--token-stdin'], { input: `${ADMIN_TOKEN}\n` });
      assert.equal(login.code, 0, login.stderr);
      const pullLine = lines.find((l) => l.startsWith('shelf pull'))!;
      const pulled = await cli.run(pullLine.split(' ').slice(1).map((a) => (a.endsWith('.sif') ? out(`private-${a}`) : a)));
      assert.equal(pulled.code, 0, pulled.stderr);
    } finally {
      await rm(cli.home, { recursive: true, force: true });
    }
  });
});
