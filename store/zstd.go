package store

import (
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// boundedZstd is the Parquet library's zstd codec, except that a page
// decodes into at most the uncompressed size its page header declares
// (which the reader bounds, 256 MiB by default): the library's decoder
// sizes its output from the zstd frame header, up to 64 GiB, so a damaged
// part could make a reader allocate far more than any page. A long run of
// randomly damaged parts stalled there once.
type boundedZstd struct {
	compress.Codec
	dec *zstd.Decoder
}

func (z boundedZstd) Decode(dst, src []byte) []byte {
	out, err := z.DecodeWithError(dst, src)
	if err != nil {
		panic(err)
	}
	return out
}

func (z boundedZstd) DecodeWithError(dst, src []byte) ([]byte, error) {
	return z.dec.DecodeAll(src, dst[:0])
}

func init() {
	lib, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		panic(err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		panic(err)
	}
	compress.RegisterCodec(compress.Codecs.Zstd, boundedZstd{Codec: lib, dec: dec})
}
