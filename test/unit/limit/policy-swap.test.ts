import { createMemoryStore } from '../../../src';
import { setPoliciesSuite } from '../../support/set-policies-suite';

setPoliciesSuite('memory store', async () => {
  const store = createMemoryStore();
  return {
    store,
    cleanup: () => store.close(),
  };
});
