import { createMemoryStore } from '../../../src';
import { operatorSuite } from '../../support/operator-suite';

operatorSuite('memory', async () => {
  const store = createMemoryStore();
  return { store, close: () => store.close() };
});
