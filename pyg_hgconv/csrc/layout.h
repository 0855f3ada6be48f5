// The memory-layout rule the clustering's kernels share (mirrored by
// pyg_hgconv.utils.kernels.reads_channels_last): a [B, C, H, W] tensor is read as
// channels-last rows when it is stored channels-last and not also contiguous, as a
// map of one channel or one pixel is.
#pragma once

#include <ATen/ATen.h>

namespace pyg_hgconv {

inline bool reads_channels_last(const at::Tensor& x) {
  return x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
}

}  // namespace pyg_hgconv
