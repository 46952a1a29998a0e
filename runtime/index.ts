/**
 * knhk's actor runtime: worker-thread and in-thread actors with typed, validated messages,
 * OTP supervision, death watch, dead letters, timers, a task pool and a control plane.
 * It knows nothing of consensus.
 * @packageDocumentation
 */
export { ActorSystem, type ActorSystemOptions, type ActorInfo, type SystemExit } from './system.js';
export { ActorRef, type AskOptions, type TellOptions } from './actor-ref.js';
export {
  defineBehavior,
  isBehavior,
  type Behavior,
  type BehaviorDefinition,
  type ActorContext,
  type Measure,
  nextTurn,
  type ActorHandlers,
  type ActorTimers,
  type Sender,
  type Signal,
  type ExitReason,
  type SerializedError,
} from './behavior.js';
export { defineTask, poolShared, type Task } from './task.js';
export { t, type Schema, type Infer, type OptionalSchema, type ParseContext, type RefShape } from '../schema/schema.js';
export { Supervisor, type Strategy, type RestartType, type Backoff, type SupervisorOptions, type SpawnOptions, type ChildInfo } from './supervisor.js';
export { type MailboxOptions, type OverflowPolicy } from './mailbox.js';
export { type DeadLetter, type DeadLetterReason, type DeadLetterListener } from './dead-letter.js';
export { type ControlApi, type ActorStatus, type EventLoopDelay } from './control.js';
export { type HandlerStats } from './cell.js';
export { realClock, VirtualClock, type Clock, type TimerHandle } from './clock.js';
export {
  KnhkError,
  AskTimeout,
  DecodeError,
  SchemaError,
  MessageTooLarge,
  MailboxFull,
  ActorNotRunning,
  SpawnError,
  ConfigError,
  SystemStopped,
  ReplyRejected,
  RemoteFailure,
  MAX_DELAY_MS,
} from './errors.js';
export { INSTRUMENTED, instrumentsOf, TICK_MS, tracerOf, within } from './telemetry.js';
export type { SystemTelemetry, TelemetryOptions } from './telemetry-hub.js';
