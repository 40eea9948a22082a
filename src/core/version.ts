import { createRequire } from 'node:module';

/** lth's version, from its package.json (dist/src/core/ is three levels below the package root). */
export const LTH_VERSION: string = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
