// Where the STL images live: Pinterest's image host, and the URL of an image by its signature.

/** Pinterest's image host. The STL release names its URLs with http; a web page loads them over https. */
export const IMAGE_HOST = 'i.pinimg.com';
export const DEFAULT_BASE_URL = `http://${IMAGE_HOST}`;

/** Pinterest's layout: `{base}/400x/ab/cd/ef/abcdef....jpg`. */
export function imageUrl(baseUrl: string, sig: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/400x/${sig.slice(0, 2)}/${sig.slice(2, 4)}/${sig.slice(4, 6)}/${sig}.jpg`;
}
