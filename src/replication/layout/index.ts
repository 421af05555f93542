export {
  enterPrimary, enterSecondary, recover, describeLayout,
  type LayoutRequest, type PrimaryRequest, type PrimaryLayout, type SecondaryLayout, type LayoutDir, type DirStatus, type RecoveryStep,
} from './layout.js';
export type { LayoutKind } from './state.js';
export type { LayoutSystem, LayoutFuseMount } from './system.js';
export { parseMountinfo, type MountEntry } from './mountinfo.js';
