/**
 * Adapter and device acquisition. Requests only the limits the kernels need (large storage
 * bindings, many storage buffers per stage) and `shader-f16` when the adapter offers it.
 */
import { DeviceError } from "./errors.ts";

export interface GpuInfo {
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  adapterName: string;
  /** True for software/fallback adapters (Mesa llvmpipe/lavapipe). */
  isFallback: boolean;
  hasF16: boolean;
  hasTimestamps: boolean;
}

export interface AcquiredDevice {
  device: GPUDevice;
  info: GpuInfo;
}

const INSTALL_HINT =
  "No WebGPU adapter was found. On Linux without a GPU install Mesa's software Vulkan driver: " +
  "`sudo apt-get install mesa-vulkan-drivers` (lavapipe). The backend can be chosen with " +
  "DENO_WEBGPU_BACKEND=vulkan|metal|dx12|gl (an empty value disables every backend).";

/** Acquire a device with the limits dplora needs. Throws {@link DeviceError} with install advice. */
export async function acquireDevice(
  options: { powerPreference?: GPUPowerPreference } = {},
): Promise<AcquiredDevice> {
  const gpu = (globalThis.navigator as { gpu?: GPU }).gpu;
  if (!gpu) throw new DeviceError(`navigator.gpu is missing in this runtime. ${INSTALL_HINT}`);
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({
      powerPreference: options.powerPreference ?? "high-performance",
    });
  } catch (e) {
    throw new DeviceError(`requestAdapter failed (${(e as Error).message}). ${INSTALL_HINT}`);
  }
  if (!adapter) throw new DeviceError(INSTALL_HINT);
  const want: GPUFeatureName[] = [];
  const hasF16 = adapter.features.has("shader-f16");
  const hasTimestamps = adapter.features.has("timestamp-query");
  if (hasF16) want.push("shader-f16");
  if (hasTimestamps) want.push("timestamp-query");
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxStorageBuffersPerShaderStage: Math.min(l.maxStorageBuffersPerShaderStage, 16),
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits });
  } catch (e) {
    throw new DeviceError(`requestDevice failed: ${(e as Error).message}`);
  }
  const ai = adapter.info;
  const adapterName = ai.description || [ai.vendor, ai.architecture, ai.device].join(" ").trim() ||
    "unknown adapter";
  return {
    device,
    info: { adapterName, isFallback: ai.isFallbackAdapter ?? false, hasF16, hasTimestamps },
  };
}
