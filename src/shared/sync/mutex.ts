/** A FIFO async mutex */
export class Mutex {
  #locked = false;
  readonly #waiters: (() => void)[] = [];

  get locked(): boolean {
    return this.#locked;
  }

  get hasWaiting(): boolean {
    return this.#waiters.length > 0;
  }

  #lock(): Promise<void> | void {
    if (!this.#locked) {
      this.#locked = true;
      return;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #unlock(): void {
    const next = this.#waiters.shift();
    // Ownership passes straight to the next waiter; the mutex stays locked
    if (next) next();
    else this.#locked = false;
  }

  async runWith<T>(closure: () => Promise<T> | T): Promise<T> {
    const acquired = this.#lock();
    if (acquired) await acquired;
    try {
      return await closure();
    } finally {
      this.#unlock();
    }
  }
}
