#!/usr/bin/env node
// The `shardline` command as npm links it (package.json "bin"): plain JavaScript, so that it runs both in
// the repository and from node_modules, where Node will not strip TypeScript types.
//
// Which code it runs: the TypeScript sources whenever they are beside it (the repository), the compiled
// dist/ only when they are not (an installed package ships dist/ and no .ts sources). So the repository
// never runs a dist/ that an earlier `npm pack` left behind and later edits have made stale.
import { existsSync } from 'node:fs'

const source = new URL('../cli/shardline.ts', import.meta.url)
await import(existsSync(source) ? source.href : new URL('../dist/cli/shardline.js', import.meta.url).href)
