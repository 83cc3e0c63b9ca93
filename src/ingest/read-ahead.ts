/**
 * Runs the given producers with at most `depth` in flight and yields their results in order, so I/O
 * overlaps with the consumer's hashing and compression while memory stays bounded.
 */
export async function* orderedPrefetch<T>(producers: Iterable<() => Promise<T>>, depth: number): AsyncIterable<T> {
  const queue: Promise<T>[] = [];
  const iterator = producers[Symbol.iterator]();
  let exhausted = false;
  const fill = () => {
    while (!exhausted && queue.length < depth) {
      const next = iterator.next();
      if (next.done) {
        exhausted = true;
        break;
      }
      const promise = next.value();
      // Rejections are observed when the consumer reaches them; avoid unhandled-rejection noise meanwhile.
      promise.catch(() => undefined);
      queue.push(promise);
    }
  };
  fill();
  while (queue.length > 0) {
    const value = await queue.shift()!;
    fill();
    yield value;
  }
}
