export { DEFAULT_CONFIG, type ConfigPatch, type FakeHighLevelConfig, type Faults, type Latency } from './options.ts';
export { RateWindow, type RateLimits, type WindowMode } from './rate-window.ts';
export { API_VERSION, FakeHighLevel, INBOUND_PATH, type FakeHighLevelOptions, type FakeStats, type ReceivedMessage } from './server.ts';
export { validateInbound } from './validate.ts';
