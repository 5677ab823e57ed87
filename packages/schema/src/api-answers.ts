/** HighLevel's answers to `POST /conversations/messages/inbound`. */
import { z } from 'zod';

/**
 * A success: documented as 200, seen as 201. Only an answer carrying a `messageId` is a delivery:
 * a 2xx with an empty body and no message created has been reported.
 */
export const inboundSuccessSchema = z.looseObject({
  success: z.boolean().optional(),
  conversationId: z.string().optional(),
  messageId: z.string().min(1),
  message: z.string().optional(),
  contactId: z.string().optional(),
  dateAdded: z.string().optional(),
  emailMessageId: z.string().optional(),
});
export type InboundSuccess = z.infer<typeof inboundSuccessSchema>;

/** NestJS-shaped error: `message` is a string, or an array of strings for validation errors (422). */
export const apiErrorBodySchema = z.looseObject({
  statusCode: z.number().int().optional(),
  message: z.union([z.string(), z.array(z.string())]),
  error: z.string().optional(),
});
export type ApiErrorBody = z.infer<typeof apiErrorBodySchema>;

/** The error body's message as one line, whatever its shape. */
export function apiErrorMessage(body: unknown): string | undefined {
  const parsed = apiErrorBodySchema.safeParse(body);
  if (!parsed.success) return undefined;
  const { message } = parsed.data;
  return Array.isArray(message) ? message.join('; ') : message;
}
