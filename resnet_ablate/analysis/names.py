"""The figures and tables a report can hold, by name, known without importing matplotlib
(argument parsing and experiment files check names against these). A title says what is
always drawn; "beside the paper" is the caption's to say, where a paper number is drawn."""

FIGURE_TITLES = {
    "fig1": "Fig. 1: training and test error of plain-20 and plain-56",
    "fig4": "Fig. 4 analog: plain vs residual nets at two depths, training and test error",
    "fig6": "Fig. 6: training and test error of plain nets and ResNets by depth",
    "fig7": "Fig. 7: std of layer responses",
    "error_vs_depth": "Final error against depth",
    "error_vs_macs": "Test error against compute",
    "error_vs_params": "Test error against parameters",
    "ablation": "Test error by variant at each depth",
}
# `figures --edf FACTOR` adds one figure and one table of this name (the factor appended).
EDF_TITLE = "Error EDFs of design spaces (Radosavovic et al. 2019)"
TABLE_TITLES = {
    "table1": "Table 1: ImageNet architectures, our MACs beside the paper's FLOPs",
    "table2": "Table 2 analog: ImageNet, plain vs ResNet at 18 and 34 layers",
    "table3": "Table 3 analog: ImageNet, shortcut options and bottleneck depths",
    "table6": "Table 6 analog: CIFAR-10 error by depth",
    "he2016_table1": "He et al. (2016) Table 1 analog: shortcut ablations on ResNet-110",
    "he2016_table2": "He et al. (2016) Table 2 analog: activation placement, ResNet-110/164",
}
