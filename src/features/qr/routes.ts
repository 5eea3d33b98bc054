import express from 'express';
import type { Runtime } from '../../runtime.ts';

/** QR code images of a link, for the JSON API (mounted under /api/v1 after authentication). */
export function apiQrRoutes(_rt: Runtime): express.Router {
  const router = express.Router();
  return router;
}
