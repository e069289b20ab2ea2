// The upload form of POST /api/recommend (multipart): the photo in `image`, an optional `k`, and `categories` once
// per category (a name may hold a comma). Read as sent, for the route to check; the multipart plugin's limits are
// answered with the limit named.
import type { FastifyRequest } from 'fastify';
import { RequestError } from './recommender.js';
import { MAX_UPLOAD_BYTES } from './upload.js';

/** The most categories one request may filter by, as JSON or as a form. */
export const MAX_CATEGORIES = 64;

const FIELDS = ['image', 'k', 'categories'];

/** The multipart plugin's limits for this form. */
export const UPLOAD_LIMITS = {
  fileSize: MAX_UPLOAD_BYTES,
  files: 1,
  fields: MAX_CATEGORIES + 1,
  fieldSize: 1024,
  parts: MAX_CATEGORIES + 2,
};

export interface UploadForm {
  image: Buffer;
  /** As sent: the route checks it is a whole number in range. */
  k?: string;
  categories: string[];
}

/** The form's fields; a RequestError naming what is missing, unknown or over a limit. */
export async function readUploadForm(request: FastifyRequest): Promise<UploadForm> {
  let image: Buffer | null = null;
  let k: string | undefined;
  const categories: string[] = [];
  try {
    for await (const part of request.parts()) {
      if (!FIELDS.includes(part.fieldname))
        throw new RequestError(400, `multipart field '${part.fieldname}': unknown (known: ${FIELDS.join(', ')})`);
      if (part.type === 'file') {
        if (part.fieldname !== 'image') throw new RequestError(400, `multipart field '${part.fieldname}': not a file`);
        image = await part.toBuffer();
      } else if (part.fieldname === 'categories') categories.push(String(part.value));
      else if (part.fieldname === 'k') {
        if (k !== undefined) throw new RequestError(400, "multipart field 'k': sent twice");
        k = String(part.value);
      } else throw new RequestError(400, "multipart field 'image': expected a file");
    }
  } catch (err) {
    throw formProblem(err);
  }
  if (!image) throw new RequestError(400, "multipart: no file in field 'image'");
  if (image.length === 0) throw new RequestError(400, "multipart field 'image': the file is empty");
  return { image, k, categories };
}

/**
 * The plugin's limits, said with the limit: a body over the size limit is a 413, a form with more parts than it can
 * have a 400 (as the same request in JSON); the parser's own errors as a malformed body.
 */
function formProblem(err: unknown): Error {
  if (err instanceof RequestError) return err;
  const { code, statusCode } = err as { code?: string; statusCode?: number };
  if (code === 'FST_REQ_FILE_TOO_LARGE')
    return new RequestError(413, `the image is over the ${MAX_UPLOAD_BYTES / 1024 / 1024} MB upload limit`);
  if (code === 'FST_FILES_LIMIT') return new RequestError(400, "send one image, in field 'image'");
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT')
    return new RequestError(400, `too many fields: at most ${MAX_CATEGORIES} categories`);
  if (statusCode) return err as Error;
  return new RequestError(400, `malformed multipart body: ${(err as Error).message}`);
}
