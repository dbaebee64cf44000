/** Every error leaves the registry endpoint as OCI error JSON with the status its code fixes. */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { LayerswarmError, toLayerswarmError, type ErrorCode } from '../../shared/errors.ts';

function fromFastify(err: FastifyError): LayerswarmError | undefined {
  if (!err.code?.startsWith('FST_') || !err.statusCode) return undefined;
  const code: ErrorCode = err.statusCode === 404 ? 'NAME_UNKNOWN' : err.statusCode === 413 ? 'SIZE_INVALID' : err.statusCode < 500 ? 'UNSUPPORTED' : 'INTERNAL';
  return new LayerswarmError(code, err.message, { status: err.statusCode, cause: err });
}

export function replyError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const e = (err instanceof Error && 'code' in err && fromFastify(err as FastifyError)) || toLayerswarmError(err);
  const level = e.status >= 500 ? 'error' : e.status === 499 ? 'debug' : 'info';
  request.log[level]({ err: e, code: e.code, status: e.status }, e.message);
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy(e);
    return reply;
  }
  reply.code(e.status === 499 ? 500 : e.status).headers(e.headers).type('application/json; charset=utf-8');
  return reply.send({ errors: [{ code: e.ociCode, message: e.message, detail: e.detail ?? null }] });
}
