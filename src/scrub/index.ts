/**
 * Scrubbing: secrets and personal data that application code printed are
 * masked, hashed or dropped before a record leaves tailfan. Pure: no I/O but
 * WebCrypto's HMAC. Records are never mutated (the runtime's event objects
 * are shared by reference); a record with nothing to scrub is returned as
 * the same object, so a clean batch costs a few RegExp tests per string.
 *
 * detectors.ts is the catalogue, scrubber.ts compiles a config, text.ts
 * scans one string, walk.ts walks records, config.ts reads SCRUB.
 */
export { parseScrubConfig } from "./config";
export { DETECTOR_KINDS, DETECTORS, DETECTORS_OFF_BY_DEFAULT, type DetectorKind } from "./detectors";
export { compileScrubber, Scrubber } from "./scrubber";
export {
  DEFAULT_SCRUB,
  FIELD_ACTIONS,
  FIELD_ROOTS,
  type FieldAction,
  type FieldRule,
  SCRUB_MODES,
  type ScrubConfig,
  type ScrubConfigError,
  type ScrubMode,
  type ScrubPattern,
} from "./types";
export { maskJson, maskText, reasonScrubber, scrubRecord, scrubRecords, scrubText } from "./walk";
