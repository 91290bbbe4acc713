import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { ADMIN_TOKEN, DB_KINDS, startShelf, type TestShelf } from '../helpers/shelf.js';

/**
 * Keyserver merge rules: only what a key's primary key signed is kept (self-signed user IDs,
 * bound subkeys, revocations); the first account to add a key owns it, others may only send
 * signatures on what it already has; a key and every merge stay within the size cap.
 */
for (const db of DB_KINDS) {
  describe(`keyserver merge rules (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    const tokens: Record<string, string> = {};
    let alice: openpgp.PrivateKey;
    let fingerprint = '';
    const MAX = 16 * 1024;

    const add = (user: string | null, keytext: string) =>
      fetch(`${shelf.url}/pks/add`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(user ? { authorization: `Bearer ${tokens[user]}` } : {}) },
        body: new URLSearchParams({ keytext }).toString(),
      });
    const index = async () => (await fetch(`${shelf.url}/pks/lookup?op=index&search=0x${fingerprint}`)).text();
    const stored = async () => openpgp.readKey({ armoredKey: await (await fetch(`${shelf.url}/pks/lookup?op=get&search=0x${fingerprint}`)).text() });
    const storedSize = async () => (await stored()).armor().length;

    before(async () => {
      shelf = await startShelf({ db, env: { SHELF_KEYSERVER_MAX_KEY_BYTES: String(MAX) } });
      for (const user of ['alice', 'mallory']) {
        const res = await fetch(`${shelf.url}/api/users`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ username: user }) });
        assert.equal(res.status, 200);
        const t = await fetch(`${shelf.url}/api/users/${user}/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ name: 'k' }) });
        tokens[user] = ((await t.json()) as { data: { token: string } }).data.token;
      }
      const generated = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Alice', email: 'alice@example.test' }], format: 'object' });
      alice = generated.privateKey;
      fingerprint = alice.getFingerprint().toUpperCase();
      const res = await add('alice', alice.toPublic().armor());
      assert.equal(res.status, 200, await res.clone().text());
    });
    after(async () => shelf?.stop());

    test('an unsigned user ID merged by someone else is dropped, never listed', async () => {
      const forged = alice.toPublic();
      const packets = forged.toPacketList();
      packets.push(openpgp.UserIDPacket.fromObject({ name: 'Mallory', email: 'mallory@evil.test' }));
      const poisoned = new openpgp.PublicKey(packets);
      assert.ok(poisoned.getUserIDs().some((u) => u.includes('mallory')), 'the forged key carries the user ID');
      const before = await storedSize();
      const res = await add('mallory', poisoned.armor());
      assert.equal(res.status, 200, await res.clone().text());
      assert.doesNotMatch(await index(), /mallory/i);
      assert.equal(await storedSize(), before);
      // Sent as a new key of its own (by its first adder), an unsigned user ID is dropped just the same.
      const other = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Bob', email: 'bob@example.test' }], format: 'object' });
      const list = other.publicKey.toPacketList();
      list.push(openpgp.UserIDPacket.fromObject({ name: 'Unsigned', email: 'unsigned@evil.test' }));
      assert.equal((await add('mallory', new openpgp.PublicKey(list).armor())).status, 200);
      const bob = await (await fetch(`${shelf.url}/pks/lookup?op=index&search=0x${other.publicKey.getFingerprint()}`)).text();
      assert.match(bob, /bob@example\.test/);
      assert.doesNotMatch(bob, /unsigned@evil/);
    });

    test('third-party certifications and user IDs signed by another key are dropped', async () => {
      const { privateKey: mallory } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Mallory', email: 'm@evil.test' }], format: 'object' });
      const before = await storedSize();
      for (let i = 0; i < 3; i++) {
        const certified = await alice.toPublic().signAllUsers([mallory]);
        assert.equal((await add('mallory', certified.armor())).status, 200);
      }
      assert.equal(await storedSize(), before, 'certifications by others do not grow the key');
      // A user ID "self-signed" with Mallory's key instead of Alice's.
      const packets = alice.toPublic().toPacketList();
      const uid = openpgp.UserIDPacket.fromObject({ name: 'Mallory', email: 'bound@evil.test' });
      packets.push(uid);
      const withUid = new openpgp.PublicKey(packets);
      const signedByMallory = await withUid.signAllUsers([mallory]);
      assert.equal((await add('mallory', signedByMallory.armor())).status, 200);
      assert.doesNotMatch(await index(), /evil/);
    });

    test('only the owner adds user IDs and subkeys; anyone may send the owner\'s revocation', async () => {
      const { privateKey: renamed } = await openpgp.reformatKey({
        privateKey: alice,
        userIDs: [{ name: 'Alice', email: 'alice@example.test' }, { name: 'Alice Work', email: 'alice@work.test' }],
        format: 'object',
      });
      const byOther = await add('mallory', renamed.toPublic().armor());
      assert.equal(byOther.status, 403);
      assert.match(((await byOther.json()) as { error: { message: string } }).error.message, /only its owner may add uid:Alice Work/);
      assert.doesNotMatch(await index(), /alice@work\.test/);
      const anonymous = await add(null, renamed.toPublic().armor());
      assert.equal(anonymous.status, 401);
      const byOwner = await add('alice', renamed.toPublic().armor());
      assert.equal(byOwner.status, 200, await byOwner.clone().text());
      assert.match(await index(), /alice@work\.test/);
      // A new subkey: the owner only.
      const withSubkey = await renamed.addSubkey({ type: 'ecc', curve: 'curve25519Legacy' });
      assert.equal((await add('mallory', withSubkey.toPublic().armor())).status, 403);
      assert.equal((await stored()).getSubkeys().length, 1);
      assert.equal((await add('alice', withSubkey.toPublic().armor())).status, 200);
      assert.equal((await stored()).getSubkeys().length, 2);
      // The holder's own revocation certificate, published by anyone: accepted, and the index shows it.
      const { publicKey: revoked } = await openpgp.revokeKey({ key: withSubkey, format: 'armored' });
      const revocation = await add('mallory', revoked);
      assert.equal(revocation.status, 200, await revocation.clone().text());
      assert.match(await index(), new RegExp(`^pub:${fingerprint}:22:\\d*:\\d+::r$`, 'm'));
      assert.equal(await (await stored()).isRevoked(), true);
    });

    test('a key larger than the cap, or a merge that would make it so, is refused with 413', async () => {
      const many = await openpgp.generateKey({
        type: 'ecc',
        curve: 'ed25519Legacy',
        userIDs: Array.from({ length: 120 }, (_, i) => ({ name: `Big ${i} ${'x'.repeat(60)}`, email: `big${i}@example.test` })),
        format: 'object',
      });
      assert.ok(many.publicKey.armor().length > MAX);
      const big = await add('alice', many.publicKey.armor());
      assert.equal(big.status, 413);
      assert.equal(((await big.json()) as { error: { code: number } }).error.code, 413);
      // Grown by merges: each update alone fits, their sum does not.
      const { privateKey: grower } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Grow', email: 'grow@example.test' }], format: 'object' });
      assert.equal((await add('alice', grower.toPublic().armor())).status, 200);
      let refused = 0;
      for (let round = 0; round < 8 && refused === 0; round++) {
        const ids = Array.from({ length: 30 }, (_, i) => ({ name: `Grow ${round}-${i} ${'y'.repeat(40)}`, email: `g${round}-${i}@example.test` }));
        const { privateKey } = await openpgp.reformatKey({ privateKey: grower, userIDs: [{ name: 'Grow', email: 'grow@example.test' }, ...ids], format: 'object' });
        assert.ok(privateKey.toPublic().armor().length < MAX);
        const res = await add('alice', privateKey.toPublic().armor());
        if (res.status === 413) refused++;
        else assert.equal(res.status, 200);
      }
      assert.equal(refused, 1, 'a merge past the cap was refused');
      const kept = await (await fetch(`${shelf.url}/pks/lookup?op=get&search=0x${grower.getFingerprint()}`)).text();
      assert.ok(kept.length <= MAX, `stored key is ${kept.length} bytes`);
    });

    test('updates of one key sent at once all land: none merged into a copy another replaced', async () => {
      const { privateKey: base } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Carol', email: 'carol@example.test' }], format: 'object' });
      const fp = base.getFingerprint();
      assert.equal((await add('alice', base.toPublic().armor())).status, 200);
      const extra = Array.from({ length: 6 }, (_, i) => ({ name: `Carol ${i}`, email: `carol${i}@example.test` }));
      const variants = await Promise.all(
        extra.map(async (uid) => (await openpgp.reformatKey({ privateKey: base, userIDs: [{ name: 'Carol', email: 'carol@example.test' }, uid], format: 'object' })).publicKey.armor()),
      );
      const answers = await Promise.all(variants.map((armored) => add('alice', armored)));
      assert.deepEqual(answers.map((r) => r.status), variants.map(() => 200));
      const listed = await (await fetch(`${shelf.url}/pks/lookup?op=index&search=0x${fp}&options=mr`)).text();
      for (const uid of extra) assert.ok(listed.includes(uid.email), `${uid.email} kept: ${listed}`);
    });
  });
}
