/**
 * THE list of Dapr building blocks a sidecar's outbound listener serves. To add one: write
 * gateway/dapr/<name>/ exporting a DaprBuildingBlock and add one line here.
 */
import { healthBlock } from '../health/block.js';
import { metadataBlock } from '../metadata/block.js';
import { stateBlock } from '../state/block.js';
import type { DaprBuildingBlock } from './building-block.js';
import { pubsubBlock } from '../pubsub/index.js';

export const DAPR_BUILDING_BLOCKS: readonly DaprBuildingBlock[] = [stateBlock, pubsubBlock, metadataBlock, healthBlock];
