// GlobalPool: Keras' GlobalMaxPooling1D and GlobalAveragePooling1D over a
// packed batch of sequences.
#pragma once

#include <cstdint>

#include "core/common/eigen_types.h"
#include "core/kernels/packed_layout.h"
#include "core/model/model.h"

namespace biserve {

// One vector per sequence from `x`, [total_steps, D] packed rows: [batch,
// D], sequences in sorted order (as a Bidirectional layer without
// return_sequences gives them). Each sequence reads only its own rows, so a
// sequence pools the same alone as in any batch.
// `keep` is Keras' mask, one byte per packed row (0: a masked step), or null
// when nothing is masked. Average leaves masked steps out of its sum and
// count; max ignores the mask, as Keras does (see PoolingType in
// model.proto).
RowMatrix GlobalPool(const GlobalPoolingLayer& layer,
                     const PackedLayout& layout, const RowMatrix& x,
                     const uint8_t* keep);

}  // namespace biserve
