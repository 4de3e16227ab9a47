// The documentation as the tests read it: the README (the landing page) and every page of docs/.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');

/** `docs/<name>` as text. */
export function docPage(name: string): string {
  return readFileSync(join(ROOT, 'docs', name), 'utf8');
}

/** The pages, README first, each with its path relative to the repository. */
export function documentationPages(): { path: string; text: string }[] {
  const pages = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => ({ path: `docs/${f}`, text: docPage(f) }));
  return [{ path: 'README.md', text: readFileSync(join(ROOT, 'README.md'), 'utf8') }, ...pages];
}

/** All of it as one text, for facts that may live on any page. */
export function documentation(): string {
  return documentationPages()
    .map((p) => p.text)
    .join('\n');
}
