// A C++ service's view of the toolkit's files: load model.ts with torch::jit::load and the AOTInductor
// package with AOTIModelPackageLoader, run the same images through both, write their logits.
// Built by tests/test_cpp_consumer.py against the libtorch inside the torch wheel (-std=c++20).
//
// usage: consumer MODEL_TS MODEL_AOTI_PT2 INPUTS N C H W OUT_TS OUT_AOTI
//   INPUTS: N*C*H*W float32 (native byte order), normalised NCHW images; OUT_*: N*classes float32.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

static void write_floats(const std::string& path, const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.numel() * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + path);
}

int main(int argc, char** argv) {
  if (argc != 10) {
    std::cerr << "usage: consumer MODEL_TS MODEL_AOTI_PT2 INPUTS N C H W OUT_TS OUT_AOTI\n";
    return 2;
  }
  try {
    const int64_t n = std::atoll(argv[4]), c = std::atoll(argv[5]), h = std::atoll(argv[6]), w = std::atoll(argv[7]);
    std::vector<float> data(static_cast<size_t>(n * c * h * w));
    std::ifstream in(argv[3], std::ios::binary);
    in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(float)));
    if (!in) throw std::runtime_error(std::string("cannot read ") + argv[3]);
    at::Tensor x = torch::from_blob(data.data(), {n, c, h, w}, torch::kFloat).clone();
    torch::NoGradGuard no_grad;

    torch::jit::script::Module ts = torch::jit::load(argv[1]);
    ts.eval();
    write_floats(argv[8], ts.forward({x}).toTensor());

    torch::inductor::AOTIModelPackageLoader aoti(argv[2]);
    write_floats(argv[9], aoti.run({x})[0]);
    std::cout << "ok " << n << " images\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
