/**
 * The JSON Schema (draft 2020-12) of the control protocol, for clients in any language: every
 * request, response, stream item and error of the control socket, generated from the zod schemas
 * the daemon validates with (`control.ts`, `runs.ts`, `observe.ts` and the tables of
 * `methods.ts`). `npm run schema` writes it to docs/control.v1.schema.json; a unit test keeps the
 * committed file equal to `controlJsonSchema()`. See docs/control-protocol.md ("JSON Schema").
 *
 * Pure: no I/O. Not imported by the CLI (nor by the daemon): only by `export-schema.ts` and tests.
 */
import * as z from 'zod/mini';
import { type ErrorCode, errorCatalogue } from '../errors/catalogue.js';
import {
  CONTROL_PROTOCOL_VERSION,
  DaemonStateSchema,
  ErrorResponseSchema,
  GatewayLinkStatusSchema,
  HelloParamsSchema,
  HelloResultSchema,
  LogFileStatusSchema,
  MAX_CONTROL_LINE_BYTES,
  PruneReportSchema,
  RequestIdSchema,
  RequestSchema,
  RetentionPolicySchema,
  RunCountsSchema,
  RunStateSchema,
  StoreStatusSchema,
  SuccessResponseSchema,
  WireErrorSchema,
} from './control.js';
import { MAX_ANSWERS_JSON_BYTES, MAX_INPUTS_JSON_BYTES } from './field-limits.js';
import { MAX_JSON_DEPTH } from './json-limits.js';
import { type ControlMethod, methodParams, methodResults, streamingMethods } from './methods.js';
import { WatchHeaderSchema, WatchRunSchema, WatchUpdateSchema } from './observe.js';
import {
  FieldSpecSchema,
  LogBatchSchema,
  LogEntrySchema,
  RunAckSchema,
  RunDetailSchema,
  RunIdSchema,
  RunRefParamsSchema,
  RunSummarySchema,
  StepRecordSchema,
  WaitingSchema,
  WorkflowIdSchema,
} from './runs.js';

/** Where a `$ref` to a named schema points: the document's own `$defs`. */
const DEFS = '#/$defs/';

/**
 * The formats JSON Schema 2020-12 defines (its "Validation" vocabulary, section 7.3). zod also
 * writes `format` for string checks that are no format (`starts_with` beside the pattern that
 * says the same): a validator in strict mode refuses an unknown format, so those are left out.
 */
const STANDARD_FORMATS: ReadonlySet<string> = new Set([
  'date-time',
  'date',
  'time',
  'duration',
  'email',
  'idn-email',
  'hostname',
  'idn-hostname',
  'ipv4',
  'ipv6',
  'uri',
  'uri-reference',
  'iri',
  'iri-reference',
  'uuid',
  'uri-template',
  'json-pointer',
  'relative-json-pointer',
  'regex',
]);

/** `hello` is answered by the socket server itself, before the methods of `methods.ts`. */
type PublishedMethod = 'hello' | ControlMethod;

/**
 * Schemas shared by several others, or named in docs/control-protocol.md, published under the
 * name of their zod schema without `Schema`. A method's params and result not listed here are
 * named after the method (`run.submit` → `RunSubmitParams`, `status` → `StatusResult`).
 */
const namedSchemas: Readonly<Record<string, z.ZodMiniType>> = {
  RequestId: RequestIdSchema,
  RunId: RunIdSchema,
  WorkflowId: WorkflowIdSchema,
  RunState: RunStateSchema,
  DaemonState: DaemonStateSchema,
  RunCounts: RunCountsSchema,
  GatewayLinkStatus: GatewayLinkStatusSchema,
  LogFileStatus: LogFileStatusSchema,
  RetentionPolicy: RetentionPolicySchema,
  StoreStatus: StoreStatusSchema,
  PruneReport: PruneReportSchema,
  HelloParams: HelloParamsSchema,
  HelloResult: HelloResultSchema,
  RunRefParams: RunRefParamsSchema,
  RunAck: RunAckSchema,
  RunSummary: RunSummarySchema,
  RunDetail: RunDetailSchema,
  Waiting: WaitingSchema,
  FieldSpec: FieldSpecSchema,
  StepRecord: StepRecordSchema,
  LogEntry: LogEntrySchema,
  LogBatch: LogBatchSchema,
  WatchHeader: WatchHeaderSchema,
  WatchRun: WatchRunSchema,
  WatchUpdate: WatchUpdateSchema,
};

/** `run.submit` → `RunSubmit`. */
function pascalName(method: string): string {
  return method
    .split(/[._-]/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

/** Every method with its params and result (of each item, for a stream); `hello` first. */
function publishedMethods(): ReadonlyArray<{
  method: PublishedMethod;
  params: z.ZodMiniType;
  result: z.ZodMiniType;
  streams: boolean;
}> {
  const methods = Object.keys(methodParams) as ControlMethod[];
  return [
    { method: 'hello', params: HelloParamsSchema, result: HelloResultSchema, streams: false },
    ...methods.map((method) => ({
      method,
      params: methodParams[method],
      result: methodResults[method],
      streams: streamingMethods.has(method),
    })),
  ];
}

/**
 * The error on the wire, its `code` narrowed to the catalogue's codes (src/errors/catalogue.ts):
 * the socket and the intake only ever send a `CharterError`'s code ("Error codes" in
 * docs/control-protocol.md).
 */
function wireErrorSchema() {
  const codes = Object.keys(errorCatalogue) as [ErrorCode, ...ErrorCode[]];
  return z.extend(WireErrorSchema, { code: z.enum(codes) });
}

/**
 * The request envelope of one method. The server reads missing or `null` params as `{}`
 * (src/control/server.ts; `hello` excepted), so params are optional, and may be null, exactly
 * when `{}` is valid params: a request without them is then accepted.
 */
function requestSchema(method: PublishedMethod, params: z.ZodMiniType) {
  const emptyIsValid = method !== 'hello' && params.safeParse({}).success;
  return z.extend(RequestSchema, {
    method: z.literal(method),
    params: emptyIsValid ? z.optional(z.nullable(params)) : params,
  });
}

type JsonSchema = Record<string, unknown>;

/** The JSON Schema of the control protocol: see docs/control-protocol.md ("JSON Schema"). */
export function controlJsonSchema(): JsonSchema {
  const registry = z.registry<{ id: string }>();
  const taken = new Set<string>();
  /** Registers a schema under `id`, or returns the name it already has; one name, one schema. */
  const name = (schema: z.ZodMiniType, id: string): string => {
    const existing = registry.get(schema)?.id;
    if (existing !== undefined) return existing;
    if (taken.has(id)) throw new Error(`controlJsonSchema: two schemas named ${id}`);
    taken.add(id);
    registry.add(schema, { id });
    return id;
  };
  for (const [id, schema] of Object.entries(namedSchemas)) name(schema, id);

  const wireError = wireErrorSchema();
  name(wireError, 'WireError');
  const errorResponse = z.extend(ErrorResponseSchema, { error: wireError });
  name(errorResponse, 'ErrorResponse');
  // An error about the whole connection, or a line whose id could not be read ("Connection-level
  // errors" in docs/control-protocol.md).
  name(z.extend(ErrorResponseSchema, { id: z.null(), error: wireError }), 'ConnectionError');
  name(SuccessResponseSchema, 'SuccessResponse');
  name(z.discriminatedUnion('ok', [SuccessResponseSchema, errorResponse]), 'Response');

  const methods: Record<string, { params: JsonSchema; result: JsonSchema; streams: boolean }> = {};
  const requests: ReturnType<typeof requestSchema>[] = [];
  for (const { method, params, result, streams } of publishedMethods()) {
    const request = requestSchema(method, params);
    name(request, `${pascalName(method)}Request`);
    requests.push(request);
    methods[method] = {
      params: { $ref: DEFS + name(params, `${pascalName(method)}Params`) },
      result: { $ref: DEFS + name(result, `${pascalName(method)}Result`) },
      streams,
    };
  }
  const [first, ...rest] = requests;
  if (first === undefined) throw new Error('controlJsonSchema: no methods');
  name(z.discriminatedUnion('method', [first, ...rest]), 'Request');

  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: `charter-daemon control protocol ${CONTROL_PROTOCOL_VERSION}`,
    description:
      'NDJSON over the daemon\u2019s Unix socket (docs/control-protocol.md). `request`, `response`, ' +
      '`error` and `connection_error` are the envelopes; `methods` gives the params and the result ' +
      '(of each item, for a stream) of every method, by name. Bounds the daemon checks beyond this ' +
      `schema: a line of at most ${MAX_CONTROL_LINE_BYTES} bytes nested at most ${MAX_JSON_DEPTH} ` +
      `levels deep, inputs of at most ${MAX_INPUTS_JSON_BYTES} and answers of at most ` +
      `${MAX_ANSWERS_JSON_BYTES} bytes as JSON.`,
    protocol: CONTROL_PROTOCOL_VERSION,
    request: { $ref: `${DEFS}Request` },
    response: { $ref: `${DEFS}Response` },
    error: { $ref: `${DEFS}WireError` },
    connection_error: { $ref: `${DEFS}ConnectionError` },
    methods,
    $defs: definitions(registry),
  };
}

/**
 * Every registered schema, converted as a caller sends it (`io: 'input'`: fields with a default
 * may be left out), each reference to another as `#/$defs/<name>`, sorted by name.
 */
function definitions(registry: z.core.$ZodRegistry<{ id: string }>): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io: 'input',
    uri: (id) => DEFS + id,
    override: ({ jsonSchema }) => {
      if (typeof jsonSchema.format === 'string' && !STANDARD_FORMATS.has(jsonSchema.format)) {
        delete jsonSchema.format;
      }
    },
  });
  const defs: Record<string, JsonSchema> = {};
  for (const id of Object.keys(schemas).sort()) {
    const { $schema: _schema, $id: _id, ...body } = schemas[id] as JsonSchema;
    // Every shared schema is registered, so none is inlined under a `$defs` of its own, which
    // `#/$defs/…` references could not reach once hoisted into the document.
    if ('$defs' in body) throw new Error(`controlJsonSchema: ${id} has nested $defs`);
    defs[id] = body;
  }
  return defs;
}
