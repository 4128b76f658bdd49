// Any TorchScript classifier as a graph of taps (graph.h): the walk over its forward, the taps'
// names, the prefix graphs and their interpreter.
#include "kernels/graph.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/script.h>

#include "kernels/error.h"

namespace vizsweep::kernels {

namespace jit = torch::jit;

namespace {

// One tap before deduplication: a call site and the graph output that holds its value.
struct Site {
  std::string name, type;
  bool module_call = true;
  size_t output = 0;  // index into the graph's outputs
};

// Tensor operations written in a forward between module calls that make a tap of their own.
const std::map<std::string, std::string>& functional_ops() {
  static const std::map<std::string, std::string> ops{
      {"aten::add", "add"},          {"aten::add_", "add"},       {"aten::cat", "cat"},
      {"aten::mul", "mul"},          {"aten::mul_", "mul"},       {"aten::flatten", "flatten"},
      {"aten::mean", "mean"},        {"aten::relu", "relu"},      {"aten::relu_", "relu"},
      {"aten::adaptive_avg_pool2d", "adaptive_avg_pool2d"},       {"aten::max_pool2d", "max_pool2d"},
      {"aten::avg_pool2d", "avg_pool2d"},                         {"aten::gelu", "gelu"},
      {"aten::silu", "silu"},        {"aten::silu_", "silu"},     {"aten::hardswish", "hardswish"},
      {"aten::hardswish_", "hardswish"}, {"aten::permute", "permute"}, {"aten::layer_norm", "layer_norm"},
  };
  return ops;
}

// In-place operations the walk rewrites out of place, so no later node changes a tap's output.
const std::set<std::string>& in_place_ops() {
  static const std::set<std::string> ops{"aten::relu_",    "aten::add_",     "aten::mul_",       "aten::sub_",
                                         "aten::div_",     "aten::sigmoid_", "aten::hardswish_", "aten::hardsigmoid_",
                                         "aten::silu_",    "aten::hardtanh_", "aten::clamp_",    "aten::leaky_relu_",
                                         "aten::elu_",     "aten::tanh_",    "aten::gelu_"};
  return ops;
}

bool is_tensor(const jit::Value* v) { return v->type()->kind() == c10::TypeKind::TensorType; }

// The module path of a module value: the chain of prim::GetAttr from the graph's self.
std::string module_path(const jit::Value* v, const jit::Value* self) {
  std::vector<std::string> parts;
  while (v != self) {
    const jit::Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return "";
    parts.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  std::string p;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) p += (p.empty() ? "" : ".") + *it;
  return p;
}

// The first call left in the block (depth first, nested blocks included).
jit::Node* find_call(jit::Block* b) {
  for (jit::Node* n : b->nodes()) {
    if (n->kind() == c10::prim::CallMethod || n->kind() == c10::prim::CallFunction) return n;
    for (jit::Block* sub : n->blocks())
      if (jit::Node* c = find_call(sub)) return c;
  }
  return nullptr;
}

void each_node(jit::Block* b, const std::function<void(jit::Node*)>& f) {
  for (jit::Node* n : b->nodes()) {
    f(n);
    for (jit::Block* sub : n->blocks()) each_node(sub, f);
  }
}

// The value of a module attribute: v reached from the graph's `self` through a chain of
// prim::GetAttr (a submodule's flag, a convolution's weight); nullopt for any other value.
std::optional<c10::IValue> attribute_value(const jit::Value* v, const jit::Value* self, const c10::IValue& module) {
  if (v == self) return module;
  if (v->node()->kind() != c10::prim::GetAttr) return std::nullopt;
  auto o = attribute_value(v->node()->input(0), self, module);
  if (!o || !o->isObject()) return std::nullopt;
  const auto& obj = o->toObject();
  const std::string name = v->node()->s(c10::attr::name);
  if (!obj->type()->hasAttribute(name)) return std::nullopt;
  return obj->getAttr(name);
}

// A module in eval mode, with its flags fixed: every `self.training` becomes false, and every
// other boolean attribute of a module (DenseNet's memory_efficient, a block's use_res_connect)
// its value, so the branches they guard fold. Without that, a branch that only raises in a
// configuration the model is not in (DenseNet: "Memory Efficient not supported in JIT") stays
// in a tap's graph with everything its condition reads.
void fold_flags(std::shared_ptr<jit::Graph> g, const c10::IValue& module) {
  std::vector<std::pair<jit::Node*, bool>> reads;
  each_node(g->block(), [&](jit::Node* n) {
    if (n->kind() != c10::prim::GetAttr || n->output()->type()->kind() != c10::TypeKind::BoolType) return;
    if (n->s(c10::attr::name) == "training") return reads.push_back({n, false});
    auto v = attribute_value(n->output(), g->inputs()[0], module);
    if (v && v->isBool()) reads.push_back({n, v->toBool()});
  });
  if (reads.empty()) return;
  for (auto [n, value] : reads) {
    jit::WithInsertPoint guard(n);
    n->output()->replaceAllUsesWith(g->insertConstant(value));
    n->destroy();
  }
  jit::ConstantPropagation(g);
}

// What a value's positions depend on in the input: positions [stride * p + lo, stride * p + hi]
// per spatial dimension (Local), the whole image (Whole: after a global pooling, a flatten,
// attention), or not known (Unknown: an operation the analysis does not know).
struct Field {
  GraphTap::Field kind = GraphTap::Field::Unknown;
  int64_t stride = 1, lo[2] = {0, 0}, hi[2] = {0, 0};
  bool exact = true;
  std::string why;
};

std::optional<std::vector<int64_t>> int_list(const jit::Value* v) {
  auto iv = jit::toIValue(v);
  if (!iv) return std::nullopt;
  if (iv->isIntList()) return iv->toIntVector();
  if (iv->isInt()) return std::vector<int64_t>{iv->toInt()};
  return std::nullopt;
}

// The union of the fields of a node's inputs (elementwise operations, concatenation).
Field merge(const std::vector<const Field*>& in, const std::string& op) {
  Field f;
  bool first = true;
  for (const Field* g : in) {
    if (g->kind == GraphTap::Field::Unknown) return *g;
    if (g->kind == GraphTap::Field::Whole) f = *g;
  }
  if (f.kind == GraphTap::Field::Whole) return f;
  for (const Field* g : in) {
    if (first) {
      f = *g;
      first = false;
      continue;
    }
    if (g->stride != f.stride) {
      Field u;
      u.why = op + " of inputs at different strides";
      return u;
    }
    for (int d = 0; d < 2; ++d) f.lo[d] = std::min(f.lo[d], g->lo[d]), f.hi[d] = std::max(f.hi[d], g->hi[d]);
    f.exact = f.exact && g->exact;
  }
  return f;
}

// A window operation (convolution, pooling) of kernel k, stride st, padding pd, dilation dl.
Field window(const Field& in, const std::vector<int64_t>& k, const std::vector<int64_t>& st, const std::vector<int64_t>& pd,
             const std::vector<int64_t>& dl) {
  if (in.kind != GraphTap::Field::Local) return in;
  auto at = [](const std::vector<int64_t>& v, int d, int64_t def) { return v.empty() ? def : v[std::min<size_t>(d, v.size() - 1)]; };
  Field f = in;
  const int64_t s0 = at(st, 0, at(k, 0, 1)), s1 = at(st, 1, at(k, 1, 1));
  if (s0 != s1) {
    Field u;
    u.why = "a window of unequal strides";
    return u;
  }
  for (int d = 0; d < 2; ++d) {
    f.lo[d] = in.lo[d] - in.stride * at(pd, d, 0);
    f.hi[d] = in.hi[d] + in.stride * (at(dl, d, 1) * (at(k, d, 1) - 1) - at(pd, d, 0));
  }
  f.stride = in.stride * s0;
  return f;
}

// The field of every tensor value of the (inlined, top-level) graph g, given each
// convolution's kernel sides and the 4-D values' shapes from a run.
std::unordered_map<const jit::Value*, Field> fields(const jit::Graph& g, const std::unordered_map<const jit::Node*, std::vector<int64_t>>& kernels) {
  static const std::set<std::string> elementwise{
      "aten::batch_norm", "aten::relu",     "aten::relu6",   "aten::hardtanh", "aten::sigmoid",  "aten::hardsigmoid",
      "aten::hardswish",  "aten::silu",     "aten::gelu",    "aten::tanh",     "aten::dropout",  "aten::feature_dropout",
      "aten::clone",      "aten::contiguous", "aten::add",   "aten::sub",      "aten::mul",      "aten::div",
      "aten::clamp",      "aten::leaky_relu", "aten::elu",   "aten::to",       "aten::type_as",  "aten::detach",
      "aten::instance_norm", "aten::group_norm", "aten::alpha_dropout", "aten::channel_shuffle", "prim::ListConstruct",
      "prim::unchecked_cast"};
  static const std::set<std::string> mixing{"aten::adaptive_avg_pool2d", "aten::adaptive_max_pool2d", "aten::mean", "aten::sum",
                                            "aten::amax", "aten::flatten", "aten::linear", "aten::matmul", "aten::bmm",
                                            "aten::addmm", "aten::mm"};
  // Fields travel with tensors and the lists (and optionals) that hold them, not with the sizes
  // and flags read from them.
  auto carries = [](const jit::Value* v) {
    const auto kind = v->type()->kind();
    return kind == c10::TypeKind::TensorType || kind == c10::TypeKind::ListType || kind == c10::TypeKind::OptionalType;
  };
  std::unordered_map<const jit::Value*, Field> f;
  Field input;
  input.kind = GraphTap::Field::Local;
  f[g.inputs()[1]] = input;
  std::function<void(const jit::Block*)> visit = [&](const jit::Block* block) {
  for (const jit::Node* n : block->nodes()) {
    if (n->kind() == c10::prim::If) {  // each branch, then what either branch returns
      for (const jit::Block* b : n->blocks()) visit(b);
      for (size_t i = 0; i < n->outputs().size(); ++i) {
        if (!carries(n->output(i))) continue;
        std::vector<const Field*> branches;
        for (const jit::Block* b : n->blocks()) {
          auto it = f.find(b->outputs()[i]);
          if (it != f.end()) branches.push_back(&it->second);
        }
        if (!branches.empty()) f[n->output(i)] = merge(branches, "prim::If");
      }
      continue;
    }
    std::vector<const Field*> in;
    for (const jit::Value* v : n->inputs()) {
      auto it = f.find(v);
      if (it != f.end() && carries(v)) in.push_back(&it->second);
    }
    if (in.empty() || n->outputs().empty()) continue;  // parameters, constants
    const std::string k = n->kind().toQualString();
    Field out;
    const Field& first = *in.front();
    if (!n->blocks().empty()) {
      out.why = k;
    } else if (k == "aten::conv2d" || k == "aten::_convolution" || k == "aten::convolution") {
      auto ks = kernels.find(n);
      const bool transposed = k != "aten::conv2d" && jit::toIValue(n->input(6)).value_or(c10::IValue(true)).toBool();
      auto st = int_list(n->input(3)), dl = int_list(n->input(5));
      auto pd = int_list(n->input(4));
      if (!pd && jit::toIValue(n->input(4)) && jit::toIValue(n->input(4))->isString() && ks != kernels.end()) {
        const bool same = jit::toIValue(n->input(4))->toStringRef() == "same";  // padding='same' / 'valid'
        pd = std::vector<int64_t>{same ? (ks->second[0] - 1) / 2 : 0, same ? (ks->second[1] - 1) / 2 : 0};
      }
      if (ks == kernels.end() || transposed || !st || !pd || !dl) out.why = k + (transposed ? " (transposed)" : "");
      else out = window(first, ks->second, *st, *pd, *dl);
    } else if (k == "aten::max_pool2d" || k == "aten::avg_pool2d") {
      auto ks = int_list(n->input(1)), st = int_list(n->input(2)), pd = int_list(n->input(3));
      auto dl = k == "aten::max_pool2d" ? int_list(n->input(4)) : std::optional<std::vector<int64_t>>(std::vector<int64_t>{1});
      auto ceil = jit::toIValue(n->input(k == "aten::max_pool2d" ? 5 : 4));
      if (!ks || !st || !pd || !dl || !ceil) out.why = k;
      else {
        out = window(first, *ks, *st, *pd, *dl);
        if (ceil->toBool()) out.exact = false;  // ceil mode: the crop's last window need not be the image's
      }
    } else if (elementwise.count(k) || (k == "aten::cat" && jit::toIValue(n->input(1)) && jit::toIValue(n->input(1))->toInt() == 1)) {
      out = merge(in, k);
    } else if (k == "aten::append") {  // a list grows in place (DenseNet's features): the list sees the new element
      Field grown = merge(in, k);
      f[n->input(0)] = grown;
      out = grown;
    } else if (first.kind != GraphTap::Field::Local) {
      out = first;
    } else if (mixing.count(k)) {
      out.kind = GraphTap::Field::Whole;  // pooling to a size, flatten, linear, attention: what mixes positions
      out.why = k;
    } else {
      out.why = k;  // an operation the analysis does not know (a permute, a reshape): no crop past it
    }
    for (const jit::Value* v : n->outputs())
      if (carries(v)) f[v] = out;
  }
  };
  visit(g.block());
  return f;
}

std::string short_type(const jit::Value* module) {
  auto cls = module->type()->cast<c10::ClassType>();
  return cls && cls->name() ? cls->name()->name() : "module";
}

}  // namespace

// In a tap's own graph, a ReLU whose operand nothing else reads runs in place again, as the
// model wrote it (the walk made every in-place operation out of place so that each tap keeps
// its value; here the tap is the only output, so an operand read once can be overwritten).
// Only operands fresh from an operation whose backward does not read its own output
// (convolution, batch norm, add, concatenation, linear): autograd then needs none of the
// overwritten values. Saves one activation's allocation and pass per ReLU.
void relu_in_place(jit::Graph& g) {
  static const std::set<std::string> fresh = {"aten::_convolution", "aten::conv2d", "aten::convolution", "aten::batch_norm",
                                              "aten::add", "aten::cat", "aten::linear"};
  const auto relu = c10::Symbol::fromQualString("aten::relu");
  const auto relu_ = c10::Symbol::fromQualString("aten::relu_");
  std::vector<jit::Node*> nodes;
  for (jit::Node* n : g.block()->nodes()) {
    if (n->kind() != relu) continue;
    const jit::Value* in = n->input(0);
    if (in->uses().size() != 1 || in->node()->owningBlock() != g.block() || !fresh.count(in->node()->kind().toQualString()))
      continue;
    nodes.push_back(n);
  }
  for (jit::Node* n : nodes) {
    jit::Node* f = g.create(relu_, n->inputs(), 1);
    f->insertBefore(n);
    f->output()->setType(n->output()->type());
    n->output()->replaceAllUsesWith(f->output());
    n->destroy();
  }
}

struct GraphNet::Impl {
  jit::Module module;
  std::shared_ptr<jit::Graph> graph;  // inlined; outputs: the logits, then one per site
  std::vector<Site> sites;            // deduplicated, in graph order
  std::vector<std::vector<std::string>> aliases;
  std::vector<GraphTap> taps;
  std::vector<size_t> tap_site;       // taps[i] comes from sites[tap_site[i]]
  std::vector<int64_t> output_shape;  // of the probe's run
  mutable std::mutex mu;
  mutable std::map<std::vector<size_t>, std::shared_ptr<jit::Code>> codes;  // by the outputs kept

  // A graph computing only `outputs` (indices into graph's outputs), compiled once.
  jit::Code& code(const std::vector<size_t>& outputs) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = codes.find(outputs);
    if (it != codes.end()) return *it->second;
    auto g = graph->copy();
    std::vector<jit::Value*> keep;
    for (size_t i : outputs) keep.push_back(g->outputs()[i]);
    while (!g->outputs().empty()) g->eraseOutput(g->outputs().size() - 1);
    for (jit::Value* v : keep) g->registerOutput(v);
    jit::EliminateDeadCode(g);
    relu_in_place(*g);
    auto c = std::make_shared<jit::Code>(g, "vizsweep_tap");
    return *codes.emplace(outputs, c).first->second;
  }

  std::vector<torch::Tensor> exec(const std::vector<size_t>& outputs, const torch::Tensor& x) const {
    jit::Code& c = code(outputs);
    jit::Stack stack{c10::IValue(module._ivalue()), c10::IValue(x)};
    jit::InterpreterState(c).run(stack);
    std::vector<torch::Tensor> out;
    for (auto& v : stack) out.push_back(v.toTensor());
    return out;
  }

  // A site's raw output in the tap's layout.
  torch::Tensor shaped(const GraphTap& t, const torch::Tensor& raw) const {
    switch (t.layout) {
      case TapLayout::Map:
      case TapLayout::Vector:
        return raw;
      case TapLayout::Tokens: {
        auto p = t.class_token ? raw.slice(1, 1) : raw;  // [N, grid^2, D]
        return p.transpose(1, 2).reshape({raw.size(0), raw.size(2), t.grid, t.grid});
      }
      case TapLayout::ClassToken:
        return raw.select(1, 0);
    }
    return raw;
  }
};

GraphNet::GraphNet() : impl_(std::make_unique<Impl>()) {}
GraphNet::~GraphNet() = default;

namespace {

// A tap's layout and shape from its tensor t [1, ...]: a map (with its field, when the analysis
// found one), a vector, or tokens on a square grid (with a class token when there is one more);
// false for tokens on no square grid.
bool set_layout(GraphTap& tap, const torch::Tensor& t, const Field* fv) {
  if (t.dim() == 4) {
    tap.layout = TapLayout::Map;
    tap.shape = tap.raw_shape;
    if (fv) {
      tap.field = fv->kind;
      tap.stride = fv->stride;
      for (int d = 0; d < 2; ++d) tap.lo[d] = fv->lo[d], tap.hi[d] = fv->hi[d];
      tap.exact_crop = fv->kind == GraphTap::Field::Local && fv->exact;
      tap.field_why = fv->why;
    }
    return true;
  }
  if (t.dim() == 2) {
    tap.layout = TapLayout::Vector;
    tap.shape = tap.raw_shape;
    return true;
  }
  const int64_t T = t.size(1), D = t.size(2);
  const auto root = [](int64_t n) {
    const auto r = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
    return r > 0 && r * r == n ? r : 0;
  };
  if (root(T - 1) > 0) tap.grid = root(T - 1), tap.class_token = true;
  else if (root(T) > 0) tap.grid = root(T);
  else return false;
  tap.layout = TapLayout::Tokens;
  tap.shape = {D, tap.grid, tap.grid};
  return true;
}

using Owners = std::unordered_map<jit::Node*, std::string>;  // the module path each node came from

// forward(self, image) -> logits, or an error naming the file.
void check_signature(const std::shared_ptr<jit::Graph>& g, const std::string& file) {
  if (g->inputs().size() != 2)
    throw Error(file, "forward takes " + std::to_string(g->inputs().size() - 1) +
                          " inputs; one image tensor [N, C, H, W] is needed");
  if (!is_tensor(g->inputs()[1]))
    throw Error(file, "forward's input is a " + g->inputs()[1]->type()->repr_str() + ", not an image tensor [N, C, H, W]");
  if (g->outputs().size() != 1 || !is_tensor(g->outputs()[0]))
    throw Error(file, "forward returns " + (g->outputs().size() == 1 ? g->outputs()[0]->type()->repr_str() : "several values") +
                          ", not a tensor of logits [N, K] (export with models/export_torchvision.py, which traces "
                          "models whose scripted forward returns a tuple)");
}

// Inlines every call, outermost first, remembering which module's forward each node came from
// (owner) and registering each module call's output as a graph output, so it survives the
// rewrites (sites); has_children: the paths of modules that call others.
void inline_calls(const std::shared_ptr<jit::Graph>& g, const torch::jit::Module& module, const std::string& file, Owners& owner,
                  std::vector<Site>& sites, std::set<std::string>& has_children) {
  jit::Value* self = g->inputs()[0];
  std::map<std::string, int> calls;  // forward calls per module path
  for (int guard = 0;; ++guard) {
    if (guard > 200000) throw Error(file, "the forward graph does not finish inlining (a recursive call?)");
    fold_flags(g, c10::IValue(module._ivalue()));
    jit::Node* n = find_call(g->block());
    if (!n) break;
    const std::string own = owner.count(n) ? owner[n] : "";
    owner.erase(n);  // the call node goes; its address may come back as a new node's
    jit::Node* before = n->prev();
    jit::Node* after = n->next();
    std::string path = own;
    bool module_forward = false;
    std::string type;
    std::vector<jit::Value*> outs;
    if (n->kind() == c10::prim::CallMethod) {
      auto cls = n->input(0)->type()->cast<c10::ClassType>();
      if (!cls) throw Error(file, "a call to " + n->s(c10::attr::name) + " on a " + n->input(0)->type()->repr_str() +
                                      " (module interfaces are not supported)");
      const std::string p = module_path(n->input(0), self);
      const std::string name = n->s(c10::attr::name);
      if (!p.empty()) path = p;
      module_forward = name == "forward" && !p.empty();
      type = short_type(n->input(0));
      auto& fn = jit::toGraphFunction(cls->getMethod(name));
      outs = jit::inlineCallTo(n, &fn, fn.graph().get());  // its own graph: calls not yet inlined
    } else {
      auto fn = n->input(0)->type()->expect<c10::FunctionType>()->function();
      n->removeInput(0);
      auto& gf = jit::toGraphFunction(*fn);
      outs = jit::inlineCallTo(n, &gf, gf.graph().get());
    }
    for (jit::Node* m = before->next(); m != after; m = m->next()) {
      owner[m] = path;
      for (jit::Block* b : m->blocks()) each_node(b, [&](jit::Node* k) { owner[k] = path; });
    }
    if (module_forward) {
      const auto dot = path.rfind('.');
      has_children.insert(dot == std::string::npos ? "" : path.substr(0, dot));
      const int k = ++calls[path];
      if (outs.size() == 1 && is_tensor(outs[0]) && outs[0]->node()->owningBlock() == g->block()) {
        sites.push_back({k == 1 ? path : path + ":" + std::to_string(k), type, true, g->registerOutput(outs[0])});
      }
    }
  }
}

// In-place operations out of place: later uses of the operand see the new value instead.
void out_of_place(const std::shared_ptr<jit::Graph>& g, Owners& owner) {
  std::vector<jit::Node*> in_place;
  each_node(g->block(), [&](jit::Node* n) {
    if (in_place_ops().count(n->kind().toQualString())) in_place.push_back(n);
  });
  // Whether `user` lies in block b or in a block nested in one of b's nodes.
  auto within = [](const jit::Node* user, const jit::Block* b) {
    for (const jit::Block* ub = user->owningBlock(); ub != nullptr; ub = ub->owningNode() ? ub->owningNode()->owningBlock() : nullptr)
      if (ub == b) return true;
    return false;
  };
  for (jit::Node* n : in_place) {
    // Later readers of the operand read the result; the graph's outputs (the taps) keep the
    // operand's value from before the operation. Where a later reader lies outside the
    // operation's block (after a branch that mutates), the operation stays in place.
    std::vector<jit::Use> later;
    bool local = true;
    for (const jit::Use& u : n->input(0)->uses()) {
      if (u.user == g->return_node() || u.user == n || !u.user->isAfter(n)) continue;
      later.push_back(u);
      local = local && within(u.user, n->owningBlock());
    }
    if (!local) continue;
    std::string q = n->kind().toQualString();
    q.pop_back();
    jit::Node* f = g->create(c10::Symbol::fromQualString(q), n->inputs(), 1);
    f->insertBefore(n);
    f->output()->setType(n->output()->type());
    if (owner.count(n)) owner[f] = owner[n];
    else owner.erase(f);
    for (const jit::Use& u : later) u.user->replaceInput(u.offset, f->output());
    n->output()->replaceAllUsesWith(f->output());
    owner.erase(n);
    n->destroy();
  }
}

// A model's checks of its input (BatchNorm's "expected 4D input", a ViT's image size) are
// branches that only raise. Kept, they would make every tap's graph compute every layer whose
// input a later check reads; vizsweep checks the input's shape itself, so they go.
void drop_input_checks(const std::shared_ptr<jit::Graph>& g) {
  std::vector<jit::Node*> checks;
  for (jit::Node* n : g->block()->nodes()) {
    if (n->kind() != c10::prim::If || !n->outputs().empty()) continue;
    bool only_raises = true;
    for (jit::Block* b : n->blocks())
      for (jit::Node* m : b->nodes()) {
        const std::string k = m->kind().toQualString();
        only_raises = only_raises && (k == "prim::RaiseException" || k == "prim::Constant" || k == "aten::format" || k == "aten::dim" || k == "aten::size" || k == "aten::len" ||
                                      k == "aten::str" || k == "aten::add" || k == "prim::Uninitialized");
      }
    if (only_raises) checks.push_back(n);
  }
  for (jit::Node* n : checks) n->destroy();
  jit::EliminateDeadCode(g);
}

// Operations between module calls: in a module that calls others (a block) or in the model's
// own forward, not inside a leaf module such as Conv2d.
void functional_sites(const std::shared_ptr<jit::Graph>& g, const Owners& owner, const std::set<std::string>& has_children,
                      std::vector<Site>& sites) {
  std::map<std::string, int> ops_seen;
  for (jit::Node* n : g->block()->nodes()) {
    auto op = functional_ops().find(n->kind().toQualString());
    if (op == functional_ops().end() || n->outputs().size() != 1 || !is_tensor(n->output())) continue;
    const auto o = owner.find(n);
    const std::string own = o == owner.end() ? "" : o->second;
    if (!own.empty() && !has_children.count(own)) continue;  // a leaf module's own operation
    const int k = ++ops_seen[own + ":" + op->second];
    const std::string name = own + ":" + op->second + (k == 1 ? "" : ":" + std::to_string(k));
    sites.push_back({name, op->second, false, g->registerOutput(n->output())});
  }
}

// One tap per tensor (the first site registered for it, the outermost call, names it; the
// others are its aliases), in graph order: by the position of the node that computes it.
void unique_in_graph_order(const std::shared_ptr<jit::Graph>& g, const std::vector<Site>& sites, const std::string& file,
                           std::vector<Site>& out, std::vector<std::vector<std::string>>& out_aliases) {
  std::map<const jit::Value*, size_t> first;
  std::vector<Site> unique;
  std::vector<std::vector<std::string>> aliases;
  for (const Site& s : sites) {
    const jit::Value* v = g->outputs()[s.output];
    auto it = first.find(v);
    if (it != first.end()) {
      aliases[it->second].push_back(s.name);
      continue;
    }
    first[v] = unique.size();
    unique.push_back(s);
    aliases.emplace_back();
  }
  std::unordered_map<const jit::Node*, size_t> order;
  size_t pos = 0;
  for (jit::Node* n : g->block()->nodes()) order[n] = pos++;
  std::vector<size_t> idx(unique.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  auto where = [&](size_t i) {
    const jit::Node* n = g->outputs()[unique[i].output]->node();
    if (n->kind() == c10::prim::Param) return size_t{0};
    auto it = order.find(n);
    if (it == order.end()) throw Error(file, "internal: tap " + unique[i].name + " is computed by " + n->kind().toQualString() + " outside the graph's body");
    return it->second + 1;
  };
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return where(a) < where(b); });
  for (size_t i : idx) {
    out.push_back(unique[i]);
    out_aliases.push_back(aliases[i]);
  }
}

}  // namespace

std::shared_ptr<GraphNet> GraphNet::build(const torch::jit::Module& module, const std::string& file) {
  std::shared_ptr<GraphNet> net(new GraphNet());
  Impl& I = *net->impl_;
  I.module = module;
  auto method = module.find_method("forward");
  if (!method) throw Error(file, "the module has no forward method");
  auto g = jit::toGraphFunction(method->function()).graph()->copy();
  check_signature(g, file);
  Owners owner;
  std::vector<Site> sites;
  std::set<std::string> has_children;
  inline_calls(g, module, file, owner, sites, has_children);
  // Branches on constants left by the last calls inlined (F.relu's `if inplace:`) fold, so every
  // operation is in the graph's body, where the rewrite below and the field analysis see it.
  jit::ConstantPropagation(g);
  out_of_place(g, owner);
  drop_input_checks(g);
  functional_sites(g, owner, has_children, sites);
  unique_in_graph_order(g, sites, file, I.sites, I.aliases);
  if (I.sites.empty()) throw Error(file, "no call site in forward returns a tensor: nothing to visualize");
  I.graph = g;
  return net;
}

void GraphNet::probe(int64_t channels, int64_t side) {
  Impl& I = *impl_;
  torch::NoGradGuard ng;
  // The whole graph with every site and, for each convolution, linear layer and matrix
  // product, its output and the operand that gives its inner size: shapes and FLOPs.
  auto g = I.graph->copy();
  struct Flop {
    jit::Node* node;
    size_t out, operand;
    bool conv;
  };
  std::vector<Flop> flops;
  for (jit::Node* n : g->block()->nodes()) {
    const std::string k = n->kind().toQualString();
    const bool conv = k == "aten::conv2d" || k == "aten::_convolution" || k == "aten::convolution";
    int operand = conv || k == "aten::linear" ? 1 : k == "aten::addmm" ? 1 : (k == "aten::matmul" || k == "aten::bmm" || k == "aten::mm") ? 0 : -1;
    if (operand < 0 || n->outputs().size() != 1) continue;
    const size_t out = g->registerOutput(n->output());
    const size_t op = g->registerOutput(n->input(static_cast<size_t>(operand)));
    flops.push_back({n, out, op, conv});
  }
  std::vector<size_t> all(g->outputs().size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  jit::Code code(g, "vizsweep_probe");
  jit::Stack stack{c10::IValue(I.module._ivalue()),
                   c10::IValue(torch::zeros({1, channels, side, side}, torch::TensorOptions().dtype(torch::kFloat)))};
  try {
    jit::InterpreterState(code).run(stack);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw Error("input_size", std::to_string(side) + " px does not run through this model: " + what.substr(0, what.find('\n')));
  }
  I.output_shape.clear();
  if (stack[0].isTensor()) I.output_shape.assign(stack[0].toTensor().sizes().begin(), stack[0].toTensor().sizes().end());
  std::unordered_map<const jit::Node*, double> node_flops;
  std::unordered_map<const jit::Node*, std::vector<int64_t>> kernels;  // convolutions' kernel sides
  for (const Flop& f : flops) {
    const auto out = stack[f.out].toTensor(), op = stack[f.operand].toTensor();
    if (f.conv && op.dim() == 4) kernels[f.node] = {op.size(2), op.size(3)};
    double macs;
    if (f.conv) macs = static_cast<double>(op.numel()) * static_cast<double>(out.size(-1) * out.size(-2));
    else if (f.node->kind().toQualString() == std::string("aten::linear"))
      macs = static_cast<double>(out.numel()) * static_cast<double>(op.size(-1));
    else
      macs = static_cast<double>(out.numel()) * static_cast<double>(op.size(-1));
    node_flops[f.node] = 2.0 * macs;
  }
  auto to_here = [&](const jit::Value* v) {  // every node v depends on
    std::unordered_set<const jit::Node*> seen;
    std::vector<const jit::Node*> todo{v->node()};
    double sum = 0;
    while (!todo.empty()) {
      const jit::Node* n = todo.back();
      todo.pop_back();
      if (!seen.insert(n).second) continue;
      auto it = node_flops.find(n);
      if (it != node_flops.end()) sum += it->second;
      for (const jit::Value* in : n->inputs()) todo.push_back(in->node());
      for (const jit::Block* b : n->blocks())
        for (const jit::Node* m : b->nodes()) todo.push_back(m);
    }
    return sum;
  };

  // Kernel sides of the convolutions inside branches too: their weights are attributes of the
  // module, reached through the chain of prim::GetAttr from self.
  each_node(g->block(), [&](jit::Node* n) {
    const std::string k = n->kind().toQualString();
    if (kernels.count(n) || (k != "aten::conv2d" && k != "aten::_convolution" && k != "aten::convolution")) return;
    auto w = attribute_value(n->input(1), g->inputs()[0], c10::IValue(I.module._ivalue()));
    if (w && w->isTensor() && w->toTensor().dim() == 4) kernels[n] = {w->toTensor().size(2), w->toTensor().size(3)};
  });
  const auto field = fields(*g, kernels);
  I.taps.clear();
  I.tap_site.clear();
  for (size_t s = 0; s < I.sites.size(); ++s) {
    const Site& site = I.sites[s];
    const c10::IValue& val = stack[site.output];
    if (!val.isTensor()) continue;
    const auto t = val.toTensor();
    if (t.dim() < 2 || t.dim() > 4 || t.size(0) != 1 || !t.is_floating_point()) continue;
    GraphTap tap;
    tap.name = site.name;
    tap.aliases = I.aliases[s];
    tap.type = site.type;
    tap.module_call = site.module_call;
    tap.raw_shape.assign(t.sizes().begin() + 1, t.sizes().end());
    const jit::Value* v = g->outputs()[site.output];
    auto own = node_flops.find(v->node());
    tap.flops = own != node_flops.end() ? own->second : static_cast<double>(t.numel());
    tap.flops_to_here = to_here(v);
    auto fi = field.find(v);
    if (!set_layout(tap, t, fi == field.end() ? nullptr : &fi->second)) continue;  // tokens on no square grid
    I.taps.push_back(tap);
    I.tap_site.push_back(s);
    if (tap.layout == TapLayout::Tokens && tap.class_token) {
      GraphTap cls = tap;
      cls.name = tap.name + ":cls";
      cls.aliases.clear();
      for (const auto& a : tap.aliases) cls.aliases.push_back(a + ":cls");
      cls.layout = TapLayout::ClassToken;
      cls.shape = {tap.raw_shape[1]};
      I.taps.push_back(cls);
      I.tap_site.push_back(s);
    }
  }
  I.codes.clear();
  check_crops(channels, side);
}

// The analysis is checked on each tap it would crop: the centre unit computed on its crop of a
// seeded random image must equal it on the whole image (within 1e-4 of its magnitude: other
// sizes may take other convolution algorithms). Where it does not, or the model refuses the
// crop (a vision transformer checks its input size), the tap runs uncropped.
void GraphNet::check_crops(int64_t channels, int64_t side) {
  Impl& I = *impl_;
  torch::NoGradGuard ng;
  std::vector<size_t> candidates;
  for (size_t i = 0; i < I.taps.size(); ++i)
    if (I.taps[i].layout == TapLayout::Map && I.taps[i].exact_crop) candidates.push_back(i);
  if (candidates.empty()) return;
  auto gen = at::detail::createCPUGenerator(7);
  const auto x = torch::rand({1, channels, side, side}, gen, torch::TensorOptions().dtype(torch::kFloat));
  std::vector<size_t> outs;
  for (size_t i : candidates) outs.push_back(I.sites[I.tap_site[i]].output);
  const auto whole = I.exec(outs, x);
  for (size_t c = 0; c < candidates.size(); ++c) {
    GraphTap& t = I.taps[candidates[c]];
    const int64_t pos[2] = {t.shape[1] / 2, t.shape[2] / 2};
    int64_t a[2], b[2];
    for (int d = 0; d < 2; ++d) {
      a[d] = std::max<int64_t>(0, pos[d] * t.stride + t.lo[d]) / t.stride * t.stride;
      b[d] = std::min(side, pos[d] * t.stride + t.hi[d] + 1);
    }
    if (a[0] == 0 && a[1] == 0 && b[0] == side && b[1] == side) continue;  // the whole image anyway
    const auto on_image = whole[c].select(3, pos[1]).select(2, pos[0]);
    bool same = false;
    try {
      const auto y = I.exec({outs[c]}, x.slice(2, a[0], b[0]).slice(3, a[1], b[1]))[0];
      const int64_t oy = pos[0] - a[0] / t.stride, ox = pos[1] - a[1] / t.stride;
      if (y.dim() == 4 && oy < y.size(2) && ox < y.size(3)) {
        const double diff = (y.select(3, ox).select(2, oy) - on_image).abs().max().item<double>();
        same = diff <= 1e-4 * std::max(on_image.abs().max().item<double>(), 1e-30);
      }
    } catch (const std::exception&) {
    }
    if (!same) {
      t.exact_crop = false;
      t.field_why = "the crop does not reproduce it";
    }
  }
}

const std::vector<GraphTap>& GraphNet::taps() const { return impl_->taps; }
const std::vector<int64_t>& GraphNet::output_shape() const { return impl_->output_shape; }

torch::Tensor GraphNet::run(const torch::Tensor& x, int index) const {
  const Impl& I = *impl_;
  const auto& t = I.taps.at(static_cast<size_t>(index));
  return I.shaped(t, I.exec({I.sites[I.tap_site[static_cast<size_t>(index)]].output}, x)[0]);
}

std::vector<torch::Tensor> GraphNet::run_all(const torch::Tensor& x, int upto) const {
  const Impl& I = *impl_;
  std::vector<size_t> outputs;
  std::map<size_t, size_t> slot;  // graph output -> position in outputs
  for (int i = 0; i <= upto; ++i) {
    const size_t o = I.sites[I.tap_site[static_cast<size_t>(i)]].output;
    if (slot.emplace(o, outputs.size()).second) outputs.push_back(o);
  }
  auto raw = I.exec(outputs, x);
  std::vector<torch::Tensor> out;
  for (int i = 0; i <= upto; ++i) {
    const size_t o = I.sites[I.tap_site[static_cast<size_t>(i)]].output;
    out.push_back(I.shaped(I.taps[static_cast<size_t>(i)], raw[slot[o]]));
  }
  return out;
}

torch::Tensor GraphNet::logits(const torch::Tensor& x) const { return impl_->exec({0}, x)[0]; }

}  // namespace vizsweep::kernels
