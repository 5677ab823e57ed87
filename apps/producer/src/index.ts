export { createProducer, producerOn, type MessageRef, type Producer, type ProducerOptions, type SendResult } from './producer.ts';
export {
  ConfigError,
  loadConfig,
  type Config,
  type LocationHold,
  type MessageDeadLettered,
  type MessageDelivered,
  type MessagePending,
  type MessageStatus,
  type MessageUnknown,
} from '@ghl-ingest/queue';
export type { InboundContact, InboundRecord } from '@ghl-ingest/schema';
export { runImport, type ImportOptions, type ImportSummary } from './import.ts';
export { startIntake, type Intake } from './intake.ts';
export { resumeLocation } from './resume.ts';
