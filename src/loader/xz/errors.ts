/** The one error the XZ decoder throws: the message names the structure and what was wrong with it. */
export class XzError extends Error {
  override name = "XzError";
}

/** Throws XzError(message). */
export function fail(message: string): never {
  throw new XzError(message);
}
