/**
 * Module evaluation, after ECMA-262's algorithms for cyclic module records
 * (Evaluate, InnerModuleEvaluation, ExecuteAsyncModule and the async
 * fulfilment and rejection steps): https://tc39.es/ecma262/#sec-moduleevaluation
 *
 * So a graph without top-level await runs in one synchronous go, as native
 * modules do (no promise callback runs between two modules' bodies); a
 * module with top-level await holds up only the modules that depend on it;
 * and modules waiting on the same async dependencies run in the order they
 * would natively. Records are linked before they get here.
 */
import { type Deferred, handledDeferred } from "../shared/data.js";
import type { ModuleRecord } from "./records.js";

type Status = "linked" | "evaluating" | "evaluating-async" | "evaluated";

/** A record's evaluation state: the spec's fields of a Cyclic Module Record */
class State {
  status: Status = "linked";
  /** Set once evaluation threw: every later evaluation throws it again */
  error?: { value: unknown };
  dfsIndex = 0;
  dfsAncestorIndex = 0;
  cycleRoot?: ModuleRecord;
  /**
   * Order in which it became async, for fair resumption; 0 when it isn't,
   * or is done (the spec's [[AsyncEvaluation]] false)
   */
  asyncEvaluation = 0;
  topLevelCapability?: Deferred;
  readonly asyncParents: ModuleRecord[] = [];
  pendingAsyncDependencies = 0;
}

export class ModuleEvaluator {
  readonly #states = new WeakMap<ModuleRecord, State>();
  #asyncOrder = 0;

  #state(record: ModuleRecord): State {
    let state = this.#states.get(record);
    if (state === undefined) {
      state = new State();
      this.#states.set(record, state);
    }
    return state;
  }

  /** Evaluates `record`'s graph: settles when `record` has (Evaluate()) */
  evaluate(record: ModuleRecord): Promise<void> {
    let state = this.#state(record);
    if (state.status === "evaluating-async" || state.status === "evaluated") {
      record = state.cycleRoot ?? record;
      state = this.#state(record);
    }
    if (state.topLevelCapability !== undefined) return state.topLevelCapability.promise;
    const stack: ModuleRecord[] = [];
    const capability = handledDeferred();
    state.topLevelCapability = capability;
    try {
      this.#inner(record, stack, 0);
      if (state.asyncEvaluation === 0) capability.resolve();
    } catch (error) {
      for (const module of stack) {
        const moduleState = this.#state(module);
        moduleState.status = "evaluated";
        moduleState.error = { value: error };
      }
      capability.reject(error);
    }
    return capability.promise;
  }

  /** InnerModuleEvaluation: returns the next DFS index, throws what a module threw */
  #inner(record: ModuleRecord, stack: ModuleRecord[], index: number): number {
    const state = this.#state(record);
    if (state.status === "evaluating-async" || state.status === "evaluated") {
      if (state.error !== undefined) throw state.error.value;
      return index;
    }
    if (state.status === "evaluating") return index;
    state.status = "evaluating";
    state.dfsIndex = index;
    state.dfsAncestorIndex = index;
    state.pendingAsyncDependencies = 0;
    index++;
    stack.push(record);
    for (let required of record.dependencies) {
      index = this.#inner(required, stack, index);
      let requiredState = this.#state(required);
      if (requiredState.status === "evaluating") {
        state.dfsAncestorIndex = Math.min(state.dfsAncestorIndex, requiredState.dfsAncestorIndex);
      } else {
        required = requiredState.cycleRoot ?? required;
        requiredState = this.#state(required);
        if (requiredState.error !== undefined) throw requiredState.error.value;
      }
      if (requiredState.asyncEvaluation !== 0) {
        state.pendingAsyncDependencies++;
        requiredState.asyncParents.push(record);
      }
    }
    if (state.pendingAsyncDependencies > 0 || record.hasTopLevelAwait) {
      state.asyncEvaluation = ++this.#asyncOrder;
      if (state.pendingAsyncDependencies === 0) this.#executeAsync(record);
    } else {
      record.execute();
    }
    if (state.dfsAncestorIndex === state.dfsIndex) {
      for (;;) {
        const member = stack.pop()!;
        const memberState = this.#state(member);
        memberState.status = memberState.asyncEvaluation === 0 ? "evaluated" : "evaluating-async";
        memberState.cycleRoot = record;
        if (member === record) break;
      }
    }
    return index;
  }

  #executeAsync(record: ModuleRecord): void {
    record.executeAsync().then(
      () => this.#fulfilled(record),
      (error) => this.#rejected(record, error)
    );
  }

  // AsyncModuleExecutionFulfilled
  #fulfilled(record: ModuleRecord): void {
    const state = this.#state(record);
    if (state.status === "evaluated") return; // (already failed)
    state.status = "evaluated";
    state.topLevelCapability?.resolve();
    const ready: ModuleRecord[] = [];
    this.#gatherAvailableAncestors(record, ready);
    ready.sort((a, b) => this.#state(a).asyncEvaluation - this.#state(b).asyncEvaluation);
    // Done: later importers needn't wait for it
    state.asyncEvaluation = 0;
    for (const module of ready) {
      const moduleState = this.#state(module);
      if (moduleState.status === "evaluated") continue;
      if (module.hasTopLevelAwait) {
        this.#executeAsync(module);
        continue;
      }
      try {
        module.execute();
      } catch (error) {
        this.#rejected(module, error);
        continue;
      }
      moduleState.status = "evaluated";
      moduleState.asyncEvaluation = 0;
      moduleState.topLevelCapability?.resolve();
    }
  }

  // GatherAvailableAncestors: parents now free to run, synchronous ones
  // taking their own parents along
  #gatherAvailableAncestors(record: ModuleRecord, ready: ModuleRecord[]): void {
    for (const parent of this.#state(record).asyncParents) {
      const parentState = this.#state(parent);
      const root = parentState.cycleRoot ?? parent;
      if (ready.includes(parent) || this.#state(root).error !== undefined) continue;
      parentState.pendingAsyncDependencies--;
      if (parentState.pendingAsyncDependencies === 0) {
        ready.push(parent);
        if (!parent.hasTopLevelAwait) this.#gatherAvailableAncestors(parent, ready);
      }
    }
  }

  // AsyncModuleExecutionRejected
  #rejected(record: ModuleRecord, error: unknown): void {
    const state = this.#state(record);
    if (state.status === "evaluated") return;
    state.error = { value: error };
    state.status = "evaluated";
    for (const parent of state.asyncParents) this.#rejected(parent, error);
    state.topLevelCapability?.reject(error);
  }
}
