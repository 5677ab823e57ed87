export { freePort, RedisServer, waitForPing, type RedisServerOptions } from './redis-server.ts';
export { useRedis, type RedisTestContext } from './use-redis.ts';
