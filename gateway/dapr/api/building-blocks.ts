/**
 * THE list of Dapr building blocks a sidecar's outbound listener serves. To add one: write
 * gateway/dapr/<name>/ exporting a DaprBuildingBlock and add one line here.
 */
import type { DaprBuildingBlock } from './building-block.js';
import { pubsubBlock } from '../pubsub/index.js';

export const DAPR_BUILDING_BLOCKS: readonly DaprBuildingBlock[] = [pubsubBlock];
