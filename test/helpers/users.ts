import { openMetaDb } from '../../src/meta/db.js';
import { createMetaStore } from '../../src/meta/store.js';
import { Accounts } from '../../src/registry/accounts/accounts.js';

/** Creates a user with one API token directly in the server's database (admin CLI comes later). */
export async function createUserWithToken(dbUrl: string, username: string): Promise<string> {
  const meta = await openMetaDb(dbUrl);
  try {
    const accounts = new Accounts(createMetaStore(meta));
    const user = await accounts.createUser(username);
    return await accounts.createToken(user.userId, 'test');
  } finally {
    await meta.close();
  }
}
