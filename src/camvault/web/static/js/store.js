// The one store: every change goes through setState; views subscribe and re-render.

/**
 * @template S
 * @param {S} initial
 */
export function createStore(initial) {
  let state = initial;
  const subscribers = new Set();
  return {
    getState: () => state,
    /** @param {Partial<S> | ((s: S) => S)} update */
    setState(update) {
      const previous = state;
      const next = typeof update === "function" ? update(state) : { ...state, ...update };
      if (next === previous) return;
      state = next;
      for (const fn of [...subscribers]) fn(state, previous);
    },
    /** @param {(state: S, previous: S) => void} fn @returns {() => void} unsubscribe */
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
  };
}
