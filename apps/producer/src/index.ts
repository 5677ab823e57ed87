export { createProducer, producerOn, type Producer, type ProducerOptions, type SendResult } from './producer.ts';
export { runImport, type ImportOptions, type ImportSummary } from './import.ts';
export { startIntake, type Intake } from './intake.ts';
export { resumeLocation } from './resume.ts';
