/**
 * A worker's notifications (NOTIFY_WEBHOOK_URL), put together: `record` puts an event in the
 * shared outbox right after the state change it reports (a location paused or parked, a dead
 * letter written), in the process where it happened; the sender (notify-sender.ts) of whichever
 * worker holds the send lease posts them. Recording never fails a delivery: Redis refusing the
 * event is logged, and the state change stands (the metrics and `ingest status` still show it).
 */
import { coerceError, NotifyOutbox, type Config, type Logger, type Notice, type RedisClient } from '@ghl-ingest/queue';
import type { NotifyPolicy } from './notify-policy.ts';
import { NotifySender, type NotifyResult } from './notify-sender.ts';

export interface Notifications {
  /** Starts the sender (it sends while this process holds the send lease). */
  start(): void;
  /** Adds an event to the outbox (a duplicate of one added lately is dropped there); never throws. */
  record: (notice: Notice) => Promise<void>;
  /** Stops sending and gives the send lease up; what is not sent yet stays for the next sender. */
  close(): Promise<void>;
}

export interface NotificationsOptions {
  redis: RedisClient;
  logger: Logger;
  policy?: Partial<NotifyPolicy>;
  onResult?: (result: NotifyResult, events: number) => void;
}

/** Undefined when NOTIFY_WEBHOOK_URL is not set. */
export function createNotifications(config: Config, options: NotificationsOptions): Notifications | undefined {
  if (config.notify === undefined) return undefined;
  const outbox = new NotifyOutbox(options.redis, config.queuePrefix);
  const log = options.logger.child({ component: 'notify' });
  const sender = new NotifySender({
    outbox,
    url: config.notify.url,
    secret: config.notify.secret,
    logger: options.logger,
    ...(options.policy === undefined ? {} : { policy: options.policy }),
    ...(options.onResult === undefined ? {} : { onResult: options.onResult }),
  });
  return {
    start: () => sender.start(),
    record: async (notice) => {
      try {
        const { dropped } = await outbox.add(notice);
        if (dropped > 0) {
          options.onResult?.('dropped', dropped);
          log.warn({ dropped }, 'notification outbox full: its oldest events dropped');
        }
      } catch (error) {
        log.warn({ err: coerceError(error), type: notice.event.type, locationId: notice.event.locationId }, 'could not record a notification');
      }
    },
    close: () => sender.close(),
  };
}
