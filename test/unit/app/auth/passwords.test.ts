import assert from 'node:assert/strict';
import { hashPassword, verifyPassword } from '../../../../src/app/auth/passwords';

describe('password hashing', () => {
  it('salts, verifies the right password and rejects a wrong one', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    assert.notEqual(a, b, 'salted');
    assert.match(a, /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    assert.equal(await verifyPassword('correct horse', a), true);
    assert.equal(await verifyPassword('correct horsf', a), false);
  });

  it('rejects unknown users and damaged hashes', async () => {
    assert.equal(await verifyPassword('anything', undefined), false);
    assert.equal(await verifyPassword('anything', 'plain-text'), false);
    assert.equal(await verifyPassword('anything', 'scrypt$16384$8$1$c2FsdA$c2hvcnQ'), false);
  });
});
