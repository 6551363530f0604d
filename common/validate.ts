// Config loading: ${ENV} interpolation, and JSON Schema validation (ajv) with errors a person can act on:
// each names the path in the config ("limits.maxKeyBytes: must be >= 1") and, for YAML, the file and line.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml'

export class ConfigError extends Error {}

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, useDefaults: true, verbose: true })

export function compileSchema<T>(schema: object): ValidateFunction<T> {
  return ajv.compile<T>(schema)
}

export interface YamlSource {
  file: string
  text: string
}

/** Parses YAML into plain data; syntax errors name the file and line. */
export function parseYaml(source: YamlSource): { data: unknown; lineOf(path: string[]): number | undefined } {
  const lineCounter = new LineCounter()
  const document = parseDocument(source.text, { lineCounter, prettyErrors: true })
  if (document.errors.length > 0) {
    const first = document.errors[0]
    const line = first.linePos?.[0].line
    throw new ConfigError(`${source.file}${line ? `:${line}` : ''}: ${first.message.split('\n')[0]}`)
  }
  return {
    data: document.toJS(),
    lineOf(path) {
      let node: unknown = document.contents
      for (const step of path) {
        if (isMap(node) || isSeq(node)) node = node.get(isSeq(node) ? Number(step) : step, true)
        else return undefined
      }
      const range = (node as Node | undefined)?.range
      return range ? lineCounter.linePos(range[0]).line : undefined
    },
  }
}

/** Validates data; throws a ConfigError listing every problem as `file:line: path: message`. */
export function validateOrThrow<T>(validate: ValidateFunction<T>, data: unknown, where: { file?: string; lineOf?(path: string[]): number | undefined } = {}): T {
  if (validate(data)) return data
  const errors = validate.errors ?? []
  // Where a schema with a description failed (a oneOf of forms, say), its one message replaces
  // the noise of every branch that did not match below it.
  const described = errors.filter((error) => error.parentSchema?.description).map((error) => error.instancePath)
  const kept = errors.filter((error) => error.parentSchema?.description || !described.some((path) => error.instancePath === path || error.instancePath.startsWith(`${path}/`)))
  const lines = kept.map((error) => describe(error, where))
  throw new ConfigError([...new Set(lines)].join('\n'))
}

function describe(error: ErrorObject, where: { file?: string; lineOf?(path: string[]): number | undefined }): string {
  const steps = error.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
  if (error.keyword === 'additionalProperties') steps.push(String(error.params.additionalProperty))
  const path = steps.reduce((text, step) => (/^\d+$/.test(step) ? `${text}[${step}]` : text ? `${text}.${step}` : step), '')
  const message = error.keyword === 'additionalProperties' ? 'is not a known setting' : (error.parentSchema?.description as string | undefined) ?? error.message ?? 'is invalid'
  const line = where.lineOf?.(steps)
  const place = where.file ? `${where.file}${line ? `:${line}` : ''}: ` : ''
  return `${place}${path || '(top level)'}: ${message}`
}

/** Replaces ${NAME} and ${NAME:-default} with environment variables; an unset one is an error. */
export function interpolateEnv(text: string, file: string, env: NodeJS.ProcessEnv = process.env): string {
  return text.split('\n').map((line, index) => line.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_match, name: string, fallback?: string) => {
    const value = env[name] ?? fallback
    if (value === undefined) throw new ConfigError(`${file}:${index + 1}: environment variable ${name} is not set`)
    return value
  })).join('\n')
}
