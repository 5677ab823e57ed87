export { resumeLocation } from './resume.ts';
