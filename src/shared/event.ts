export type EventListenerFn<E extends Event> = (event: E) => void;
export interface EventListenerObj<E extends Event> {
  handleEvent(event: E): void;
}
export type TypedEventListener<E extends Event> =
  | EventListenerFn<E>
  | EventListenerObj<E>;

export const kWrapListener = Symbol("kWrapListener");

/**
 * EventTarget typed by an event map. Subclasses may define [kWrapListener]
 * to wrap every listener (e.g. to catch errors or wait for input gates).
 */
export class TypedEventTarget<
  EventMap extends Record<string, Event>,
> extends EventTarget {
  readonly #wrapped = new WeakMap<object, EventListenerFn<Event>>();

  protected [kWrapListener]?(listener: (event: Event) => void): (event: Event) => void;

  #wrap(listener: TypedEventListener<any> | null): EventListenerFn<Event> | null {
    if (!listener) return null;
    let wrapped = this.#wrapped.get(listener);
    if (wrapped) return wrapped;
    wrapped = this[kWrapListener]!((event) => {
      if (typeof listener === "function") listener(event);
      else listener.handleEvent(event);
    });
    this.#wrapped.set(listener, wrapped);
    return wrapped;
  }

  override addEventListener<Type extends keyof EventMap & string>(
    type: Type,
    listener: TypedEventListener<EventMap[Type]> | null,
    options?: AddEventListenerOptions | boolean
  ): void {
    super.addEventListener(
      type,
      (this[kWrapListener] ? this.#wrap(listener) : listener) as EventListener,
      options
    );
  }

  override removeEventListener<Type extends keyof EventMap & string>(
    type: Type,
    listener: TypedEventListener<EventMap[Type]> | null,
    options?: EventListenerOptions | boolean
  ): void {
    super.removeEventListener(
      type,
      (this[kWrapListener] ? this.#wrap(listener) : listener) as EventListener,
      options
    );
  }

  override dispatchEvent(event: EventMap[keyof EventMap]): boolean {
    return super.dispatchEvent(event);
  }
}

/**
 * An EventTarget whose dispatchEvent rethrows the first error thrown by a
 * listener (and stops later listeners), as the Workers runtime does.
 */
export class ThrowingEventTarget<
  EventMap extends Record<string, Event>,
> extends TypedEventTarget<EventMap> {
  #error?: unknown;
  #hasError = false;

  protected override [kWrapListener](
    listener: (event: Event) => void
  ): (event: Event) => void {
    return (event) => {
      try {
        listener(event);
      } catch (error) {
        event.stopImmediatePropagation();
        this.#error = error;
        this.#hasError = true;
      }
    };
  }

  override dispatchEvent(event: EventMap[keyof EventMap]): boolean {
    this.#error = undefined;
    this.#hasError = false;
    const result = super.dispatchEvent(event);
    if (this.#hasError) {
      const error = this.#error;
      this.#error = undefined;
      this.#hasError = false;
      throw error;
    }
    return result;
  }
}
