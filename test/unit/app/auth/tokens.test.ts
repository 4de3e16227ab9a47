import assert from 'node:assert/strict';
import { hashToken, isWellFormedToken, newToken } from '../../../../src/app/auth/tokens';

describe('tokens', () => {
  it('issues distinct well-formed tokens and stores only a 32-byte hash', () => {
    const t = newToken();
    assert.ok(isWellFormedToken(t));
    assert.notEqual(newToken(), t);
    assert.equal(hashToken(t).length, 32);
    assert.ok(hashToken(t).equals(hashToken(t)));
    assert.ok(!isWellFormedToken('rmp_short'));
    assert.ok(!isWellFormedToken(`xyz_${t.slice(4)}`));
  });
});
